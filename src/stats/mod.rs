//! Statistics for neural-decoding science: rank correlations (Kendall's tau
//! for RSA), Pearson/Spearman correlation, t-tests and multiple-testing
//! corrections, RDMs and RSA, permutation tests and noise ceilings. Every function is checked against scipy.stats /
//! statsmodels to 1e-10 (see `tests/it/stats.rs` and
//! `tests/fixtures/stats/make_stats_fixtures.py`).
//!
//! Conventions (as scipy): a constant input or too few observations gives a
//! NaN result, never a panic; NaN handling follows [`NanPolicy`]; paired
//! inputs of different lengths are `Error::ShapeMismatch`.

mod common;
pub mod correlation;
/// Distribution functions (Student t, incomplete beta, normal) behind the p-values,
/// ported from Cephes as scipy.special uses them.
pub mod dist;
pub mod kendall;
pub mod multitest;
pub mod noise_ceiling;
pub mod permutation;
pub mod rank;
pub mod rdm;
pub mod ttest;

pub use common::{Alternative, NanPolicy, TestResult};
pub use correlation::{
    pearson, pearson_columns, spearman, ColumnCorrelations, CorrelationOptions,
    PearsonColumnsOptions,
};
pub use kendall::{kendall_matrix, kendall_tau, KendallMethod, KendallOptions, KendallVariant};
pub use multitest::{
    bonferroni, fdr, holm, FdrMethod, FdrOptions, MultitestOptions, MultitestResult,
};
pub use noise_ceiling::{noise_ceiling, NoiseCeiling, NoiseCeilingMethod};
pub use permutation::{
    permutation_test, permutation_test_with, PermStatistic, PermutationOptions, PermutationResult,
};
pub use rank::rankdata_average;
pub use rdm::{
    kendall_fdr, rdm, rsa, CorrectOver, KendallFdr, RdmMetric, RsaMethod, PAIRWISE_MAX_WORK,
};
pub use ttest::{ttest_1samp, ttest_ind, ttest_rel, TTestIndOptions, TTestOptions};
