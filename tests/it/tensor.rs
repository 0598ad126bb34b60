//! Tensor operations from scripts: values, shapes and polite errors.

use crate::common::{assert_script_error, eval_f64, eval_script};

fn shown(script: &str) -> String {
    voxlab::cli::show(&eval_script(script).unwrap_or_else(|e| panic!("{e}\n{script}")))
}

#[test]
fn creation_and_properties() {
    assert_eq!(
        shown(
            "let t = tensor([[1, 2, 3], [4, 5, 6]]); [t.shape, t.dtype, t.device, t.ndim, t.numel]"
        ),
        "[[2, 3], \"f32\", \"cpu\", 2, 6]"
    );
    assert_eq!(shown("tensor([1, 2], #{dtype: \"f64\"}).dtype"), "\"f64\"");
    assert_eq!(shown("to_array(arange(0, 10, 3))"), "[0, 3, 6, 9]");
    assert_eq!(
        shown("to_array(linspace(0.0, 1.0, 5))"),
        "[0.0, 0.25, 0.5, 0.75, 1.0]"
    );
    assert_eq!(shown("to_array(eye(2))"), "[[1.0, 0.0], [0.0, 1.0]]");
    assert_eq!(shown("to_array(full([2], 0.5))"), "[0.5, 0.5]");
    assert_eq!(shown("randn([4, 5]).shape"), "[4, 5]");
    assert_eq!(
        shown("let p = randperm(6); p.sort(); p"),
        "[0, 1, 2, 3, 4, 5]"
    );
    assert_script_error("tensor([[1, 2], [3]])", &["tensor: ragged nested array"]);
    assert_script_error(
        "zeros([2, -1])",
        &["zeros: a shape needs sizes ≥ 0, got -1"],
    );
    assert_script_error(
        "tensor([\"a\"])",
        &["tensor: expected numbers in the array"],
    );
}

#[test]
fn arithmetic_broadcasts_with_tensors_and_numbers() {
    assert_eq!(
        shown("to_array((tensor([1, 2]) + 1) * 2 - tensor([1, 1]) / 2)"),
        "[3.5, 5.5]"
    );
    assert_eq!(shown("to_array(10 - tensor([1, 2]))"), "[9.0, 8.0]");
    assert_eq!(
        shown("to_array(tensor([[1], [2]]) + tensor([10, 20]))"),
        "[[11.0, 21.0], [12.0, 22.0]]"
    );
    assert_eq!(shown("to_array(-tensor([1, -2]))"), "[-1.0, 2.0]");
    assert_eq!(shown("to_array(arange(4) / 2)"), "[0.0, 0.5, 1.0, 1.5]");
    assert_eq!(
        shown("to_array(tensor([1, 5, 3]) > 2)"),
        "[false, true, true]"
    );
    assert_eq!(shown("to_array(pow(tensor([2, 3]), 2))"), "[4.0, 9.0]");
    assert!((eval_f64("sqrt(tensor([16.0])).item()") - 4.0).abs() < 1e-12);
}

#[test]
fn reductions_follow_numpy_conventions() {
    assert_eq!(eval_f64("tensor([[1, 2], [3, 4]]).sum().item()"), 10.0);
    assert_eq!(
        shown("to_array(tensor([[1, 2], [3, 4]]).mean(0))"),
        "[2.0, 3.0]"
    );
    assert_eq!(
        shown("to_array(tensor([[1, 2], [3, 4]]).max(1))"),
        "[2.0, 4.0]"
    );
    assert_eq!(
        shown("to_array(tensor([[1, 2], [3, 4]]).min(-1))"),
        "[1.0, 3.0]"
    );
    // numpy.std([1, 2, 3, 4]) = 1.118033988749895 (ddof 0); ddof 1 = 1.2909944487358056
    assert!(
        (eval_f64("tensor([1, 2, 3, 4], #{dtype: \"f64\"}).std().item()") - 1.118033988749895)
            .abs()
            < 1e-12
    );
    assert!(
        (eval_f64("tensor([[1], [2], [3], [4]], #{dtype: \"f64\"}).std(0, 1)[0]")
            - 1.2909944487358056)
            .abs()
            < 1e-12
    );
    assert_eq!(eval_f64("tensor([3, 9, 2]).argmax()"), 1.0);
    assert_eq!(
        shown("to_array(tensor([[1, 9], [8, 2]]).argmax(1))"),
        "[1, 0]"
    );
    assert_script_error(
        "ones([2, 2]).sum(2)",
        &["sum: axis 2 is out of range for a tensor of shape 2×2"],
    );
}

#[test]
fn zscore_matches_scipy() {
    // scipy.stats.zscore([[1, 2], [3, 5], [5, 11]], axis=0), computed with numpy 2.x
    let want = [
        [-1.224744871391589, -1.0690449676496976],
        [0.0, -0.2672612419124244],
        [1.224744871391589, 1.3363062095621219],
    ];
    let v = eval_script("to_array(zscore(tensor([[1, 2], [3, 5], [5, 11]], #{dtype: \"f64\"})))")
        .expect("zscore");
    let rows = v.into_array().expect("array");
    for (r, row) in rows.into_iter().enumerate() {
        for (c, x) in row.into_array().expect("row").into_iter().enumerate() {
            let x = x.as_float().expect("float");
            assert!(
                (x - want[r][c]).abs() < 1e-12,
                "[{r}][{c}] {x} vs {}",
                want[r][c]
            );
        }
    }
    assert_eq!(
        shown("zscore(tensor([[1, 1], [1, 1]]))[0][0].is_nan()"),
        "true"
    );
}

#[test]
fn selection_indexing_and_joining() {
    assert_eq!(
        shown("to_array(arange(12).reshape([4, 3]).rows([0, -1]))"),
        "[[0, 1, 2], [9, 10, 11]]"
    );
    assert_eq!(
        shown("to_array(arange(12).reshape([4, 3]).cols([2]))"),
        "[[2], [5], [8], [11]]"
    );
    assert_eq!(
        shown("let x = arange(4); to_array(x.rows(x > 1))"),
        "[2, 3]"
    );
    assert_eq!(shown("to_array(arange(10).slice(0, 2, 5))"), "[2, 3, 4]");
    assert_eq!(
        shown("let t = tensor([[1, 2], [3, 4]]); [t[1][0], t[-1].shape]"),
        "[3.0, [2]]"
    );
    assert_eq!(shown("cat([ones([2, 3]), zeros([1, 3])]).shape"), "[3, 3]");
    assert_eq!(
        shown("cat([ones([2, 3]), zeros([2, 1])], 1).shape"),
        "[2, 4]"
    );
    assert_eq!(shown("stack([ones([3]), zeros([3])], 1).shape"), "[3, 2]");
    assert_eq!(shown("ones([2, 3]).transpose().shape"), "[3, 2]");
    assert_eq!(shown("arange(6).reshape([2, -1]).shape"), "[2, 3]");
    assert_eq!(
        shown("to_array(matmul(tensor([[1, 2]]), tensor([[3], [4]])))"),
        "[[11.0]]"
    );
    assert_script_error(
        "ones([2, 2])[5]",
        &["index: index 5 is out of range for axis 0 of length 2"],
    );
    assert_script_error(
        "cat([ones([2, 3]), zeros([1, 4])])",
        &["cat: tensor 1", "expected 2×3, got 1×4"],
    );
    assert_script_error("stack([])", &["stack: expected at least one tensor"]);
    assert_script_error(
        "arange(6).reshape([4, -1])",
        &["reshape: new shape: expected sizes whose product is 6"],
    );
    assert_script_error("ones([3]).cols([0])", &["cols: needs at least 2 axes"]);
    assert_script_error("ones([3]).rows([1.5])", &["rows: indices must be integers"]);
}

#[test]
fn comparisons_and_mask_logic_are_element_wise() {
    assert_eq!(
        shown("to_array(arange(4) == 2)"),
        "[false, false, true, false]"
    );
    assert_eq!(
        shown("to_array(tensor([1, 2]) != tensor([1, 3]))"),
        "[false, true]"
    );
    assert_eq!(
        shown("let a = tensor([1, 5, 3]) > 2; to_array((a | !a) & a)"),
        "[false, true, true]"
    );
    assert_script_error(
        "ones([2]) | ones([2])",
        &["'|' combines bool tensors (masks), got f32 and f32"],
    );
}

#[test]
fn rounding_remainder_and_linear_algebra_as_numpy() {
    // numpy: np.round halves to even; % takes the divisor's sign.
    assert_eq!(
        shown("to_array(tensor([0.5, 1.5, 2.5, -0.5, -1.7]).round())"),
        "[0.0, 2.0, 2.0, -0.0, -2.0]"
    );
    assert_eq!(shown("to_array(floor(tensor([1.7, -1.2])))"), "[1.0, -2.0]");
    assert_eq!(shown("to_array(ceil(tensor([1.2, -1.7])))"), "[2.0, -1.0]");
    assert_eq!(shown("arange(0, 3).round().dtype"), "\"i64\"");
    assert_eq!(
        shown("to_array(arange(-4, 4) % 3)"),
        "[2, 0, 1, 2, 0, 1, 2, 0]"
    );
    assert_eq!(shown("to_array(tensor([-1.5, 2.5]) % 2.0)"), "[0.5, 0.5]");
    assert_eq!(shown("to_array(7 % tensor([2.0, -3.0]))"), "[1.0, -2.0]");
    assert_eq!(
        shown("to_array(tensor([5.0, 7.0]) % tensor([3.0, 4.0]))"),
        "[2.0, 3.0]"
    );
    let inv = "let a = tensor([[2.0, 1.0], [1.0, 3.0]], #{dtype: \"f64\"}); to_array(a.inverse())";
    assert_eq!(shown(inv), "[[0.6, -0.2], [-0.2, 0.4]]");
    assert!(
        (eval_f64("det(tensor([[1.0, 2.0], [3.0, 4.0]], #{dtype: \"f64\"})).item()") + 2.0).abs()
            < 1e-12
    );
    assert_eq!(
        shown("to_array(solve(tensor([[3.0, 1.0], [1.0, 2.0]], #{dtype: \"f64\"}), tensor([9.0, 8.0])))"),
        "[2.0, 3.0]"
    );
    assert_script_error(
        "inverse(tensor([[1.0, 2.0], [2.0, 4.0]]))",
        &["inverse: the matrix is singular"],
    );
    assert_script_error(
        "det(ones([2, 3]))",
        &["det: a: expected a square matrix", "2×3"],
    );
    assert_script_error(
        "solve(eye(3), ones([2]))",
        &["solve: b: expected 3 values or 3 rows"],
    );
}

#[test]
fn mean_and_std_take_the_options_map_of_zscore() {
    let same = |a: &str, b: &str| {
        let script =
            format!("set_seed(2); let x = randn([7, 4]); (({a}) - ({b})).abs().max().item()");
        assert!(eval_f64(&script) < 1e-7, "{a} vs {b}");
    };
    same("x.mean(#{axis: 0})", "x.mean(0)");
    same("x.mean(#{axis: -1})", "x.mean(1)");
    same("x.mean(#{})", "x.mean()");
    same("x.std(#{axis: 0, ddof: 1})", "x.std(0, 1)");
    same("x.std(#{axis: 1})", "x.std(1)");
    same("x.std(#{ddof: 1})", "x.flatten().std(0, 1)");
    assert_script_error(
        "randn([3]).mean(#{axes: 0})",
        &["mean: unknown option 'axes'", "axis"],
    );
    assert_script_error(
        "randn([3]).std(#{axis: 2})",
        &["std: axis 2 is out of range"],
    );
}
