//! Script face of [`crate::data`]: NIfTI volumes.

use std::path::{Path, PathBuf};

use rhai::{Array, Dynamic, Engine, Map};

use super::error::{guard, RhaiResult};
use super::help::{FnDoc, HelpRegistry, OptDoc};
use super::options::Opts;
use super::session::Session;
use super::tensor::{array_to_values, to_indices, to_tensor};
use crate::data::dataset::{self, Cell, Dataset, DatasetOptions};
use crate::data::images::{self, ImageSet};
use crate::data::mask::{self, Mask};
use crate::data::public::bold5000::{self, Bold5000Options};
use crate::data::public::god::{self, GodOptions, TestSet};
use crate::data::public::nsd::{self, BetasFormat, NsdOptions};
use crate::data::public::{self, ImageOptions, Source};
use crate::data::Volume;
use crate::error::{Error, Result};
use crate::io::images::Filter;
use crate::io::nifti::HeaderValue;
use crate::tensor::{shape_text, Tensor};

pub static LOAD_NIFTI: FnDoc = FnDoc {
    name: "load_nifti", domain: "data",
    signature: "load_nifti(path: string, opts?: map) -> Volume",
    summary: "Reads a NIfTI-1/2 image (.nii, .nii.gz, .hdr/.img; any endianness and numeric type, scaling applied as nibabel does); .data is x·y·z[·t] as nibabel's get_fdata(), .affine nibabel's get_best_affine().",
    options: &[OptDoc { name: "dtype", ty: "string", default: "f32", meaning: "f32 or f64 for .data" }],
    example: "let v = load_nifti(save_nifti(randn([4, 5, 6]), \"r.nii.gz\"));\nprint(v.shape);   // [4, 5, 6]",
};
pub static SAVE_NIFTI: FnDoc = FnDoc {
    name: "save_nifti", domain: "data",
    signature: "save_nifti(v: Volume | Tensor, path: string, opts?: map) -> string",
    summary: "Writes .nii or .nii.gz (float32 unless the data is f64) with the affine in sform and qform; returns the path.",
    options: &[
        OptDoc { name: "affine", ty: "Tensor 4×4", default: "none", meaning: "voxel → world matrix for a tensor (default: the volume's, or 1 mm identity)" },
        OptDoc { name: "tr", ty: "float", default: "none", meaning: "repetition time in seconds for 4-D data" },
    ],
    example: "save_nifti(zeros([10, 10, 10]), \"blank.nii\", #{affine: eye(4) * 2});",
};
pub static VOLUME: FnDoc = FnDoc {
    name: "Volume", domain: "data",
    signature: "v.data -> Tensor\nv.affine -> Tensor (4×4, f64)\nv.shape -> array\nv.voxel_size -> array\nv.tr -> float or ()\nv.header -> map",
    summary: "A brain image: voxel data with its affine, voxel sizes, TR and raw header fields.",
    options: &[],
    example: "let v = load_nifti(save_nifti(ones([2, 3, 4, 5]), \"bold.nii\", #{tr: 2.0}));\nprint(v.tr);          // 2.0\nprint(v.data.shape);  // [2, 3, 4, 5]",
};

pub static LOAD_MASK: FnDoc = FnDoc {
    name: "load_mask", domain: "data",
    signature: "load_mask(path: string) -> Mask",
    summary: "Reads a NIfTI mask (3-D, or 4-D with one volume): its non-zero voxels are in.",
    options: &[],
    example: "let m = load_mask(save_nifti(ones([4, 4, 3]), \"m.nii.gz\"));\nprint(m);   // Mask[48 voxels; 4×4×3; 1×1×1 mm]",
};
pub static APPLY_MASK: FnDoc = FnDoc {
    name: "apply_mask", domain: "data",
    signature: "apply_mask(v: Volume, mask: Mask) -> Tensor",
    summary: "The voxels of v inside the mask: a vector (voxels) for 3-D v, a matrix t × voxels for 4-D v; columns in nilearn NiftiMasker order (C order over x, y, z of the mask's voxels). v and the mask must share grid and affine.",
    options: &[],
    example: "let v = load_nifti(save_nifti(randn([4, 4, 3, 10]), \"bold.nii\"));\nlet m = load_mask(save_nifti(ones([4, 4, 3]), \"m.nii\"));\nprint(apply_mask(v, m).shape);   // [10, 48]",
};
pub static UNMASK: FnDoc = FnDoc {
    name: "unmask", domain: "data",
    signature: "unmask(x: Tensor, mask: Mask) -> Volume",
    summary: "Puts voxel values back on the mask's grid (the inverse of apply_mask): a vector gives a 3-D volume, a t × voxels matrix a 4-D one (x·y·z·t); voxels outside the mask are 0; the affine is the mask's.",
    options: &[],
    example: "let m = load_mask(save_nifti(ones([4, 4, 3]), \"m.nii\"));\nlet v = unmask(randn([5, m.count]), m);\nprint(v.shape);   // [4, 4, 3, 5]",
};
pub static LOAD_ATLAS: FnDoc = FnDoc {
    name: "load_atlas", domain: "data",
    signature: "load_atlas(image: string, labels_csv: string) -> map",
    summary: "Reads a label image and a CSV naming its labels into a map name → Mask. The CSV has a header; label values come from the column 'index' (else 'label', 'value', 'id', else the first numeric column), names from 'name' (else the first text column). A listed label with no voxels is an error.",
    options: &[],
    example: "let img = save_nifti(tensor([[[1, 1], [2, 0]]]), \"atlas.nii\");\nlet csv = save_csv(#{index: [1, 2], name: [\"V1\", \"V2\"]}, \"labels.csv\");\nlet rois = load_atlas(img, csv);\nprint(rois.V1.count);   // 2",
};
pub static ROI_UNION: FnDoc = FnDoc {
    name: "roi_union", domain: "data",
    signature: "roi_union(a: Mask, b: Mask) -> Mask\nroi_union(masks: array) -> Mask",
    summary: "Voxels in any of the masks (same grid and affine required).",
    options: &[],
    example: "let a = load_mask(save_nifti(tensor([[[1, 0], [0, 0]]]), \"a.nii\"));\nlet b = load_mask(save_nifti(tensor([[[0, 1], [0, 0]]]), \"b.nii\"));\nprint(roi_union(a, b).count);   // 2",
};
pub static ROI_INTERSECT: FnDoc = FnDoc {
    name: "roi_intersect", domain: "data",
    signature: "roi_intersect(a: Mask, b: Mask) -> Mask\nroi_intersect(masks: array) -> Mask",
    summary: "Voxels in every one of the masks (same grid and affine required).",
    options: &[],
    example: "let a = load_mask(save_nifti(tensor([[[1, 1], [0, 0]]]), \"a.nii\"));\nlet b = load_mask(save_nifti(tensor([[[0, 1], [1, 0]]]), \"b.nii\"));\nprint(roi_intersect([a, b]).count);   // 1",
};
pub static MASK: FnDoc = FnDoc {
    name: "Mask", domain: "data",
    signature: "m.count -> int\nm.shape -> array\nm.affine -> Tensor (4×4, f64)\nm.voxel_size -> array\nm.data -> Tensor (x·y·z, 0/1 f32)\nm.volume -> Volume\nm.indices -> Tensor (i64, C-order flat index of each voxel, as np.flatnonzero)",
    summary: "A boolean voxel mask (a brain mask or an ROI) on a grid with an affine; prints as Mask[210 voxels; 71×89×72; 2×2×2 mm].",
    options: &[],
    example: "let m = load_mask(save_nifti(tensor([[[1, 0], [1, 1]]]), \"m.nii\"));\nprint(m.count);             // 3\nprint(to_array(m.indices)); // [0, 2, 3]",
};

pub static SMOOTH: FnDoc = FnDoc {
    name: "smooth", domain: "data",
    signature: "smooth(v: Volume, fwhm_mm: float | array) -> Volume",
    summary: "Gaussian smoothing of the spatial axes with a full width at half maximum in mm (one number, or [x, y, z]; 0 leaves an axis alone), equal to nilearn's smooth_img: voxel sizes from the affine, scipy's gaussian_filter1d kernel (radius ⌊4σ+0.5⌋) with 'reflect' edges, non-finite values set to 0 first. 4-D volumes are smoothed volume by volume.",
    options: &[],
    example: "let v = load_nifti(save_nifti(randn([8, 8, 6]), \"r.nii\", #{affine: eye(4) * 2}));\nlet s = smooth(v, 6.0);\nprint(s.data.std().item() < v.data.std().item());   // true",
};

pub static LOAD_IMAGES: FnDoc = FnDoc {
    name: "load_images", domain: "data",
    signature: "load_images(dir: string, opts?: map) -> ImageSet\nload_images(paths: array, opts?: map) -> ImageSet",
    summary: "Reads PNG/JPEG images (a folder's .png/.jpg/.jpeg files sorted by name, or a list of paths) into an ImageSet: N×3×H×W float32 in [0,1], ids from the file names without extension. Greyscale becomes RGB, alpha is dropped. Resizing is Pillow's Image.resize (antialiased, 8-bit per pass), so values equal PIL/torchvision pipelines.",
    options: &[
        OptDoc { name: "size", ty: "int | [h, w]", default: "none", meaning: "resize every image to size×size or h×w pixels (aspect not kept); none keeps the files' size, which must then agree" },
        OptDoc { name: "filter", ty: "string", default: "bicubic", meaning: "resampling filter as Pillow's: bicubic, bilinear, lanczos, box or nearest" },
    ],
    example: "let s = zeros([2, 3, 8, 8]);\nsave_images(s, \"stim\");\nlet imgs = load_images(out_dir() + \"/stim\", #{size: 4});\nprint(imgs);   // ImageSet[2 images; 3×4×4; 0, 1]",
};
pub static SAVE_IMAGES: FnDoc = FnDoc {
    name: "save_images", domain: "data",
    signature: "save_images(images: ImageSet | Tensor, path: string, opts?: map) -> array | string",
    summary: "Writes images in [0,1] as 8-bit files (⌊255x+0.5⌋ clamped, as torchvision's save_image). An ImageSet or an N×3×H×W tensor goes to the folder path as <id>.png (a tensor's ids are 0, 1, …) and the paths are returned; a single 3×H×W tensor goes to the file path (.png or .jpg) and that path is returned.",
    options: &[OptDoc { name: "format", ty: "string", default: "png", meaning: "png or jpg, for folders" }],
    example: "let grid = image_grid(rand([4, 3, 8, 8]), #{cols: 2});\nsave_images(grid, \"grid.png\");",
};
pub static RESIZE_IMAGES: FnDoc = FnDoc {
    name: "resize_images", domain: "data",
    signature: "resize_images(images: ImageSet | Tensor, size: int | [h, w], opts?: map) -> ImageSet",
    summary: "Every image resized to size×size or h×w pixels (aspect not kept) as load_images resizes: Pillow's Image.resize on the image in 8 bits (⌊255x+0.5⌋, as save_images writes it; antialiased, 8-bit per pass), back to float32 in [0, 1]. Ids are kept (a tensor's are 0, 1, …). E.g. stimuli to the 512 px a Stable Diffusion pipeline works at, as Takagi & Nishimoto resize their decoded images.",
    options: &[OptDoc { name: "filter", ty: "string", default: "bicubic", meaning: "resampling filter as Pillow's: bicubic, bilinear, lanczos, box or nearest" }],
    example: "let s = resize_images(rand([2, 3, 8, 8]), 16);\nprint(s);   // ImageSet[2 images; 3×16×16; 0, 1]\nprint(resize_images(s, [4, 6], #{filter: \"box\"}).data.shape);   // [2, 3, 4, 6]",
};
pub static IMAGE_GRID: FnDoc = FnDoc {
    name: "image_grid", domain: "data",
    signature: "image_grid(images: ImageSet | Tensor, opts?: map) -> Tensor",
    summary: "Tiles N×3×H×W images into one 3×H'×W' image, as torchvision's make_grid (row-major, padding around and between tiles).",
    options: &[
        OptDoc { name: "cols", ty: "int", default: "8", meaning: "images per row" },
        OptDoc { name: "padding", ty: "int", default: "2", meaning: "pixels between and around tiles" },
        OptDoc { name: "pad_value", ty: "float", default: "0.0", meaning: "value of the padding (0 black, 1 white)" },
    ],
    example: "let g = image_grid(rand([5, 3, 8, 8]), #{cols: 3, padding: 1});\nprint(g.shape);   // [3, 19, 28]",
};
pub static IMAGE_SET: FnDoc = FnDoc {
    name: "ImageSet", domain: "data",
    signature: "s.data -> Tensor (N×3×H×W)\ns.ids -> array of strings\ns.len -> int\ns.select(indices: array) -> ImageSet",
    summary: "Stimulus images with their ids; prints as ImageSet[50 images; 3×64×64; a, b, c, …].",
    options: &[],
    example: "let s = image_set(rand([3, 3, 4, 4]), [\"a\", \"b\", \"c\"]);\nprint(s.select([2, 0]).ids);   // [\"c\", \"a\"]",
};

pub static DICOM_TO_NIFTI: FnDoc = FnDoc {
    name: "dicom_to_nifti", domain: "data",
    signature: "dicom_to_nifti(dir: string, out_dir: string) -> array",
    summary: "Converts the DICOM series under dir (up to 5 folders deep) with dcm2niix into .nii.gz files plus BIDS .json sidecars in out_dir (relative: inside the run's output folder) and returns the paths of the NIfTI files written, sorted; load them with load_nifti. dcm2niix is $VOXLAB_DCM2NIIX when set, else looked for in $VIRTUAL_ENV/bin, in the build's environment, then on PATH (`pip install dcm2niix`). An error when it is missing or finds no images.",
    options: &[],
    example: "try {\n    for p in dicom_to_nifti(\"scans/dicom\", \"nifti\") { print(load_nifti(p)); }\n} catch (e) {\n    print(e);   // dicom_to_nifti: scans/dicom: not a folder\n}",
};

pub static IMAGE_SET_FN: FnDoc = FnDoc {
    name: "image_set", domain: "data",
    signature: "image_set(data: Tensor, ids: array) -> ImageSet",
    summary: "Wraps an N×3×H×W tensor in [0,1] (a reconstruction, say) with one id per image.",
    options: &[],
    example: "let recon = image_set(rand([2, 3, 8, 8]), [\"n01\", \"n02\"]);\nsave_images(recon, \"recon\");",
};
pub static SELECT: FnDoc = FnDoc {
    name: "select", domain: "data",
    signature: "select(s: ImageSet, indices: array) -> ImageSet\nselect(ds: Dataset, trials: array) -> Dataset",
    summary: "The images (or a dataset's trials, with every trial-aligned part) at the given positions, in that order; negative positions count from the end.",
    options: &[],
    example: "let s = image_set(rand([3, 3, 4, 4]), [\"a\", \"b\", \"c\"]);\nprint(s.select([-1]).ids);   // [\"c\"]",
};

pub static LOAD_DATASET: FnDoc = FnDoc {
    name: "load_dataset", domain: "data",
    signature: "load_dataset(dir: string, opts?: map) -> Dataset",
    summary: "Reads a dataset folder (docs/dataset-layout.md), or a public dataset in place, told apart by what the path holds (docs/datasets.md): a bdpy BData .h5 file (GOD, deeprecon; images from an images/ folder beside it), an NSD root or its nsddata_betas/ppdata/subjNN folder, a BOLD5000 root or its ROIs/CSI{N} folder — as load_god, load_nsd and load_bold5000 with their defaults. A voxlab folder has dataset.json naming betas (4-D NIfTI, trials last, or .npy trials × voxels with a mask), mask, rois or atlas, trials.csv, stimuli/, captions.json, labels.csv, ratings.csv. Validates on load: trial rows vs betas, missing stimuli, ROIs outside the brain mask, NaN betas; every problem names the file and row.",
    options: &[
        OptDoc { name: "images", ty: "bool", default: "true", meaning: "load the stimulus images" },
        OptDoc { name: "image_size", ty: "int | [h, w]", default: "none", meaning: "resize the stimuli (as load_images' size)" },
        OptDoc { name: "filter", ty: "string", default: "bicubic", meaning: "resampling filter for image_size" },
        OptDoc { name: "nan", ty: "string", default: "error", meaning: "NaN betas: error, or drop (drop those voxels with a warning)" },
    ],
    example: "let d = out_dir() + \"/ds\";\nsave_nifti(randn([3, 3, 2, 4]), d + \"/betas.nii.gz\");\nsave_csv(#{stimulus: [\"a\", \"b\", \"a\", \"b\"], split: [\"test\", \"test\", \"test\", \"test\"]}, d + \"/trials.csv\");\nsave_json(#{format: 1, betas: \"betas.nii.gz\", trials: \"trials.csv\"}, d + \"/dataset.json\");\nlet ds = load_dataset(d);\nprint(ds.average_repeats().betas.shape);   // [2, 18]",
};
pub static LOAD_GOD: FnDoc = FnDoc {
    name: "load_god", domain: "data",
    signature: "load_god(path: string | array, opts?: map) -> Dataset",
    summary: "Reads bdpy BData HDF5 files in place (GOD's SubjectN.h5; deeprecon's training and test files given as an array; older files with dataSet/metaData and Label): VoxelData columns as betas on the grid of voxel_x/y/z (C order over x, y, z; a line grid without coordinates), every ROI_* key as an ROI, DataType 1 as train and 2 (or 3, imagery) as test, stimulus_id (or Label, through its vmap) as the stimulus: GOD's float synset.imageID matched to 6 decimals, named as in imageID_training.csv / imageID_test.csv (n01518878_10042); labels are the synsets. Errors name the file: not a BData layout, no voxel or stimulus key, voxels differing between files, a stimulus without an image. See docs/datasets.md.",
    options: &[
        OptDoc { name: "images", ty: "string", default: "none", meaning: "folder of the stimulus images (training/, test/, imageID_*.csv); none: no images" },
        OptDoc { name: "image_size", ty: "int | [h, w]", default: "none", meaning: "resize the stimuli (as load_images' size)" },
        OptDoc { name: "filter", ty: "string", default: "bicubic", meaning: "resampling filter for image_size" },
        OptDoc { name: "test", ty: "string", default: "perception", meaning: "the test split: perception (DataType 2) or imagery (DataType 3)" },
        OptDoc { name: "voxels", ty: "string", default: "VoxelData", meaning: "the metadata key of the voxel columns" },
        OptDoc { name: "nan", ty: "string", default: "error", meaning: "NaN betas: error, or drop (drop those voxels with a warning)" },
    ],
    example: "let ds = load_god(\"tests/fixtures/datasets/god/Subject1.h5\", #{images: \"tests/fixtures/datasets/god/images\"});\nprint(ds.train().len);                     // 6\nprint(ds.test().average_repeats().len);    // 2\nprint(ds.roi(\"V1\").shape);                // [12, 2]",
};
pub static LOAD_NSD: FnDoc = FnDoc {
    name: "load_nsd", domain: "data",
    signature: "load_nsd(root: string, opts?: map) -> Dataset",
    summary: "Reads an NSD subject in place from the published layout under root: betas_sessionNN.nii.gz (or .hdf5) of nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR, streamed a volume at a time keeping only the ROI's voxels (values > 0 of roi/<roi>.nii.gz) and divided by 300 (percent signal change); trials and images from nsd_expdesign.mat (masterordering, subjectim; the shared images of sharedix are the test split, their repeats kept as trials); the atlases' labels as ROIs (prf-visualrois also gives V1, V2, V3 = ventral ∪ dorsal); the images the subject saw from nsd_stimuli.hdf5 (imgBrick), ids the 0-based 73k index; COCO captions joined through nsd_stim_info_merged.csv (the first per trial, or all). Errors name the file: a missing session or ROI, a session without 750 trials or on another grid, a session beyond the design, images beyond the brick, an image without captions.",
    options: &[
        OptDoc { name: "subject", ty: "int", default: "none", meaning: "1–8; none: the one subject whose betas are under root" },
        OptDoc { name: "sessions", ty: "array", default: "none", meaning: "1-based session numbers; none: every session whose betas are there" },
        OptDoc { name: "roi", ty: "string", default: "nsdgeneral", meaning: "the ROI volume selecting the voxels (roi/<name>.nii.gz, values > 0)" },
        OptDoc { name: "atlases", ty: "array", default: "none", meaning: "atlases whose labels become ROIs; none: streams and prf-visualrois where present" },
        OptDoc { name: "betas", ty: "string", default: "auto", meaning: "auto (.nii.gz, else .hdf5), nifti or hdf5" },
        OptDoc { name: "images", ty: "bool", default: "true", meaning: "read the subject's images from nsd_stimuli.hdf5" },
        OptDoc { name: "image_size", ty: "int | [h, w]", default: "none", meaning: "resize the stimuli as they are read (425×425 otherwise)" },
        OptDoc { name: "filter", ty: "string", default: "bicubic", meaning: "resampling filter for image_size" },
        OptDoc { name: "captions", ty: "bool", default: "true", meaning: "join COCO's captions (annotations/captions_{train,val}2017.json): the image's first caption per trial" },
        OptDoc { name: "all_captions", ty: "bool", default: "false", meaning: "every COCO caption of the image (an array per trial, for references) instead of the first" },
    ],
    example: "let ds = load_nsd(\"tests/fixtures/datasets/nsd\", #{subject: 1, sessions: [1]});\nprint(ds.len);                   // 750\nprint(ds.rois.keys().contains(\"V1\"));\nprint(ds.test().average_repeats().len);",
};
pub static LOAD_BOLD5000: FnDoc = FnDoc {
    name: "load_bold5000", domain: "data",
    signature: "load_bold5000(root: string, opts?: map) -> Dataset",
    summary: "Reads a BOLD5000 subject in place: ROIs/CSI{N}/mat/CSI{N}_ROIs_TR{tr}.mat (LH/RH × EarlyVis, LOC, OPA, PPA, RSC, trials × voxels; ROIs per hemisphere and both, on a line grid: the files have no coordinates), the trial order of ROIs/stim_lists/CSI0{N}_stim_lists.txt, the 113 repeated images (BOLD5000_Stimuli/Scene_Stimuli/repeated_stimuli_113_list.txt) as the test split, images from Presented_Stimuli/{COCO,ImageNet,Scene}. Errors name the file: a missing ROI file or list, ROI matrices whose trials disagree with the list, an image missing.",
    options: &[
        OptDoc { name: "subject", ty: "int", default: "none", meaning: "1–4 (CSI1–CSI4); none: the one subject under root" },
        OptDoc { name: "tr", ty: "string | int", default: "34", meaning: "the TR of the betas: 1–5, or 34 (mean of TRs 3 and 4)" },
        OptDoc { name: "images", ty: "bool", default: "true", meaning: "load the stimulus images" },
        OptDoc { name: "image_size", ty: "int | [h, w]", default: "none", meaning: "resize the stimuli (as load_images' size)" },
        OptDoc { name: "filter", ty: "string", default: "bicubic", meaning: "resampling filter for image_size" },
        OptDoc { name: "nan", ty: "string", default: "error", meaning: "NaN betas: error, or drop (drop those voxels with a warning)" },
    ],
    example: "let ds = load_bold5000(\"tests/fixtures/datasets/bold5000\", #{subject: 1});\nprint(ds.len);                          // 14\nprint(ds.roi(\"EarlyVis\").shape);       // [14, 5]\nprint(ds.test().average_repeats().len); // 2",
};
pub static DATASET: FnDoc = FnDoc {
    name: "Dataset", domain: "data",
    signature: "ds.betas -> Tensor (trials × voxels)\nds.trials -> map {stimulus, split, repeat} of arrays\nds.images -> ImageSet (one per trial) or ()\nds.captions -> array or ()\nds.labels -> array or ()\nds.ratings -> map name → Tensor\nds.rois -> map name → Mask\nds.mask -> Mask\nds.len -> int\nds.dir -> string (the folder it was read from or written to; \"\" for none)\nds.train() / ds.test() -> Dataset\nds.average_repeats() -> Dataset\nds.roi(name) -> Tensor (trials × ROI voxels)\nds.select(trials) -> Dataset\nds.save(dir) -> string (the folder written)",
    summary: "Stimulus–response pairs: betas with their trials, images, captions, labels, ratings and ROIs, all aligned trial by trial. average_repeats() averages the trials of each stimulus (as GOD's test set is used; repeat becomes the count).",
    options: &[],
    example: "let d = out_dir() + \"/ds\";\nsave_nifti(randn([3, 3, 2, 3]), d + \"/betas.nii\");\nsave_csv(#{stimulus: [\"a\", \"b\", \"c\"], split: [\"train\", \"train\", \"test\"]}, d + \"/trials.csv\");\nsave_json(#{betas: \"betas.nii\", trials: \"trials.csv\"}, d + \"/dataset.json\");\nlet ds = load_dataset(d);\nprint(ds.train().len);   // 2",
};

pub static TRAIN: FnDoc = FnDoc {
    name: "train", domain: "data",
    signature: "train(ds: Dataset) -> Dataset",
    summary: "The trials whose split is train, with every trial-aligned part.",
    options: &[],
    example: "let d = out_dir() + \"/ds\";\nsave_nifti(randn([2, 2, 2, 4]), d + \"/betas.nii\");\nsave_nifti(tensor([[[1, 0], [0, 0]], [[1, 1], [0, 0]]]), d + \"/v1.nii\");\nsave_csv(#{stimulus: [\"a\", \"b\", \"c\", \"c\"], split: [\"train\", \"train\", \"test\", \"test\"]}, d + \"/trials.csv\");\nsave_json(#{betas: \"betas.nii\", trials: \"trials.csv\", rois: #{V1: \"v1.nii\"}}, d + \"/dataset.json\");\nlet ds = load_dataset(d);\nprint(ds.train().len);   // 2",
};
pub static TEST: FnDoc = FnDoc {
    name: "test", domain: "data",
    signature: "test(ds: Dataset) -> Dataset",
    summary: "The trials whose split is test, with every trial-aligned part.",
    options: &[],
    example: "let d = out_dir() + \"/ds\";\nsave_nifti(randn([2, 2, 2, 4]), d + \"/betas.nii\");\nsave_nifti(tensor([[[1, 0], [0, 0]], [[1, 1], [0, 0]]]), d + \"/v1.nii\");\nsave_csv(#{stimulus: [\"a\", \"b\", \"c\", \"c\"], split: [\"train\", \"train\", \"test\", \"test\"]}, d + \"/trials.csv\");\nsave_json(#{betas: \"betas.nii\", trials: \"trials.csv\", rois: #{V1: \"v1.nii\"}}, d + \"/dataset.json\");\nlet ds = load_dataset(d);\nprint(ds.test().trials.stimulus);   // [\"c\", \"c\"]",
};
pub static AVERAGE_REPEATS: FnDoc = FnDoc {
    name: "average_repeats", domain: "data",
    signature: "average_repeats(ds: Dataset) -> Dataset",
    summary: "One row per stimulus (in order of first appearance): the mean of its trials' betas; other parts from its first trial; trials.repeat becomes the number of trials averaged. A stimulus in both splits is an error.",
    options: &[],
    example: "let d = out_dir() + \"/ds\";\nsave_nifti(randn([2, 2, 2, 4]), d + \"/betas.nii\");\nsave_nifti(tensor([[[1, 0], [0, 0]], [[1, 1], [0, 0]]]), d + \"/v1.nii\");\nsave_csv(#{stimulus: [\"a\", \"b\", \"c\", \"c\"], split: [\"train\", \"train\", \"test\", \"test\"]}, d + \"/trials.csv\");\nsave_json(#{betas: \"betas.nii\", trials: \"trials.csv\", rois: #{V1: \"v1.nii\"}}, d + \"/dataset.json\");\nlet ds = load_dataset(d);\nlet t = ds.test().average_repeats();\nprint(t.trials.repeat);   // [2]",
};
pub static ROI: FnDoc = FnDoc {
    name: "roi", domain: "data",
    signature: "roi(ds: Dataset, name: string) -> Tensor",
    summary: "The betas of one ROI: trials × the ROI's voxels (in the brain mask, nilearn order).",
    options: &[],
    example: "let d = out_dir() + \"/ds\";\nsave_nifti(randn([2, 2, 2, 4]), d + \"/betas.nii\");\nsave_nifti(tensor([[[1, 0], [0, 0]], [[1, 1], [0, 0]]]), d + \"/v1.nii\");\nsave_csv(#{stimulus: [\"a\", \"b\", \"c\", \"c\"], split: [\"train\", \"train\", \"test\", \"test\"]}, d + \"/trials.csv\");\nsave_json(#{betas: \"betas.nii\", trials: \"trials.csv\", rois: #{V1: \"v1.nii\"}}, d + \"/dataset.json\");\nlet ds = load_dataset(d);\nprint(ds.roi(\"V1\").shape);   // [4, 3]",
};

fn masks_from(op: &'static str, arr: &Array) -> Result<Vec<Mask>> {
    arr.iter()
        .enumerate()
        .map(|(i, d)| {
            d.read_lock::<Mask>().map(|m| m.clone()).ok_or_else(|| {
                Error::invalid(op, format!("item {i} is a {}, not a Mask", d.type_name()))
            })
        })
        .collect()
}

fn affine_tensor(a: &[[f64; 4]; 4]) -> Result<Tensor> {
    let flat: Vec<f64> = a.iter().flatten().copied().collect();
    Tensor::from_f64("affine", &flat, &[4, 4], tch::Kind::Double)
}

fn affine_from(op: &'static str, v: &Dynamic) -> Result<[[f64; 4]; 4]> {
    let values = if let Some(arr) = v.read_lock::<Array>() {
        let (vals, shape) = array_to_values(op, &arr)?;
        if shape != [4, 4] {
            return Err(Error::shape(op, "affine", "4×4", shape_text(&shape)));
        }
        vals
    } else {
        let t = to_tensor(op, "affine", v)?;
        if t.shape() != [4, 4] {
            return Err(Error::shape(op, "affine", "4×4", shape_text(&t.shape())));
        }
        t.to_f64_vec(op)?
    };
    let mut a = [[0.0; 4]; 4];
    for (i, x) in values.into_iter().enumerate() {
        a[i / 4][i % 4] = x;
    }
    Ok(a)
}

/// The `filter` option of image loading, one of Pillow's resampling filters.
fn filter_option(opts: &Opts) -> Result<Filter> {
    let name = opts.choice("filter", Filter::NAMES)?;
    Filter::parse(&name)
        .ok_or_else(|| Error::invalid("filter", format!("unknown filter \"{name}\"")))
}

fn header_value(v: &HeaderValue) -> Dynamic {
    match v {
        HeaderValue::Int(i) => Dynamic::from_int(*i),
        HeaderValue::Float(x) => Dynamic::from_float(*x),
        HeaderValue::Text(s) => Dynamic::from(s.clone()),
        HeaderValue::Ints(v) => {
            Dynamic::from_array(v.iter().map(|&i| Dynamic::from_int(i)).collect())
        }
        HeaderValue::Floats(v) => {
            Dynamic::from_array(v.iter().map(|&x| Dynamic::from_float(x)).collect())
        }
    }
}

pub fn register(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    for doc in [
        &LOAD_NIFTI,
        &SAVE_NIFTI,
        &VOLUME,
        &LOAD_MASK,
        &APPLY_MASK,
        &UNMASK,
        &LOAD_ATLAS,
        &ROI_UNION,
        &ROI_INTERSECT,
        &MASK,
        &SMOOTH,
        &LOAD_IMAGES,
        &SAVE_IMAGES,
        &RESIZE_IMAGES,
        &IMAGE_GRID,
        &IMAGE_SET,
        &IMAGE_SET_FN,
        &SELECT,
        &DICOM_TO_NIFTI,
        &LOAD_DATASET,
        &LOAD_GOD,
        &LOAD_NSD,
        &LOAD_BOLD5000,
        &DATASET,
        &TRAIN,
        &TEST,
        &AVERAGE_REPEATS,
        &ROI,
    ] {
        help.add(doc);
    }
    register_masks(engine);
    register_images(engine, session);
    register_datasets(engine, session);
    register_resampling(engine, help);
    let s = session.clone();
    engine.register_fn(
        "dicom_to_nifti",
        move |dir: &str, out_dir: &str| -> RhaiResult<Array> {
            guard("dicom_to_nifti", || {
                let out = s.output_path(out_dir);
                let files =
                    crate::io::dicom::dicom_to_nifti("dicom_to_nifti", Path::new(dir), &out)?;
                Ok(files
                    .iter()
                    .map(|p| {
                        s.wrote(p);
                        Dynamic::from(p.display().to_string())
                    })
                    .collect())
            })
        },
    );
    engine.register_type_with_name::<Volume>("Volume");
    engine.register_fn("to_string", |v: &mut Volume| v.to_string());
    engine.register_fn("to_debug", |v: &mut Volume| v.to_string());
    engine.register_get("data", |v: &mut Volume| v.data.clone());
    engine.register_get("shape", |v: &mut Volume| -> Array {
        v.shape().into_iter().map(Dynamic::from_int).collect()
    });
    engine.register_get("voxel_size", |v: &mut Volume| -> Array {
        v.voxel_size
            .iter()
            .map(|&x| Dynamic::from_float(x))
            .collect()
    });
    engine.register_get("tr", |v: &mut Volume| {
        v.tr.map_or(Dynamic::UNIT, Dynamic::from_float)
    });
    engine.register_get("header", |v: &mut Volume| -> Map {
        v.header
            .iter()
            .map(|(k, x)| (k.as_str().into(), header_value(x)))
            .collect()
    });
    engine.register_get("affine", |v: &mut Volume| -> RhaiResult<Tensor> {
        guard("affine", || {
            let flat: Vec<f64> = v.affine.iter().flatten().copied().collect();
            Tensor::from_f64("affine", &flat, &[4, 4], tch::Kind::Double)
        })
    });

    let load = |path: &str, opts: Map| -> RhaiResult<Volume> {
        guard("load_nifti", || {
            let opts = Opts::parse(&LOAD_NIFTI, opts)?;
            let f64 = opts.choice("dtype", &["f32", "f64"])? == "f64";
            let mut v = Volume::load(Path::new(path), f64)?;
            v.data = Tensor(crate::tensor::tc(
                "load_nifti",
                v.data.0.f_to_device(crate::device::current()),
            )?);
            Ok(v)
        })
    };
    engine.register_fn("load_nifti", move |p: &str| load(p, Map::new()));
    engine.register_fn("load_nifti", load);

    let s = session.clone();
    let save = move |v: Dynamic, path: &str, opts: Map| -> RhaiResult<String> {
        guard("save_nifti", || {
            let opts = Opts::parse(&SAVE_NIFTI, opts)?;
            let mut vol = match v.read_lock::<Volume>() {
                Some(vol) => vol.clone(),
                None => {
                    let identity = [
                        [1.0, 0.0, 0.0, 0.0],
                        [0.0, 1.0, 0.0, 0.0],
                        [0.0, 0.0, 1.0, 0.0],
                        [0.0, 0.0, 0.0, 1.0],
                    ];
                    Volume::from_tensor("save_nifti", to_tensor("save_nifti", "v", &v)?, identity)?
                }
            };
            if let Some(a) = opts.raw("affine") {
                let fresh = Volume::from_tensor(
                    "save_nifti",
                    vol.data.clone(),
                    affine_from("save_nifti", &a)?,
                )?;
                vol.affine = fresh.affine;
                vol.voxel_size = fresh.voxel_size;
            }
            if let Some(tr) = opts.opt_f64("tr")? {
                if !(tr > 0.0 && tr.is_finite()) {
                    return Err(Error::invalid(
                        "save_nifti",
                        format!("tr must be a positive number of seconds, got {tr}"),
                    ));
                }
                vol.tr = Some(tr);
            }
            s.save(path, |out| vol.save(out))
        })
    };
    let save2 = save.clone();
    engine.register_fn("save_nifti", move |v: Dynamic, p: &str| {
        save2(v, p, Map::new())
    });
    engine.register_fn("save_nifti", save);
}

// ---------------------------------------------------------------------------
// The simulated subject.

pub static SIMULATE_SUBJECT: FnDoc = FnDoc {
    name: "simulate_subject", domain: "data",
    signature: "simulate_subject(opts?: map) -> Dataset",
    summary: "A subject with known ground truth: rendered scenes (shape × colour = 54 categories, captions, valence/arousal ratings) and voxel responses from known encoding models in ROIs V1–V3 (retinotopic pRFs over contrast energy, colour and oriented energy with a preferred orientation per voxel), V4 (colour), LOC (shape), LANG (caption words), AMY (valence); GOD-like trials (test stimuli each of a different category while n_test ≤ 54). Returned in memory; nothing is written unless asked: with save: true (or ds.save(dir)) it goes to a folder in the dataset layout (betas as a 4-D NIfTI, ROIs disjoint; with save: true also ground_truth/signal.nii.gz, the noiseless responses, and extra_images/ and extra_fmri/), and the subject in memory equals what load_dataset reads from that folder (images quantised to 8 bits as the PNGs).",
    options: &[
        OptDoc { name: "seed", ty: "int", default: "0", meaning: "everything is deterministic given the seed" },
        OptDoc { name: "n_train", ty: "int", default: "1200", meaning: "training stimuli, each shown once" },
        OptDoc { name: "n_test", ty: "int", default: "50", meaning: "test stimuli" },
        OptDoc { name: "test_repeats", ty: "int", default: "35", meaning: "presentations of each test stimulus" },
        OptDoc { name: "n_extra_fmri", ty: "int", default: "0", meaning: "extra unlabeled fMRI trials of unseen stimuli, written to extra_fmri/ (betas.npy trials × mask voxels, trials.csv, stimuli/); not part of the returned Dataset" },
        OptDoc { name: "n_extra_images", ty: "int", default: "0", meaning: "extra images without fMRI" },
        OptDoc { name: "image_size", ty: "int", default: "64", meaning: "rendered image height and width" },
        OptDoc { name: "snr", ty: "float", default: "0.35", meaning: "signal sd / noise sd of single-trial responses in every ROI voxel; the default is calibrated to GOD (docs/simulated-subject.md); 1.0 or more gives an easy subject for teaching" },
        OptDoc { name: "noise_fwhm", ty: "float", default: "0.0", meaning: "smoothness of the noise across voxels, FWHM in mm (0: independent per voxel); 0–30" },
        OptDoc { name: "grid", ty: "array of int", default: "[40, 48, 40]", meaning: "brain grid size (3 mm voxels); each side 12–96" },
        OptDoc { name: "roi_size", ty: "float", default: "1.0", meaning: "multiplier on the ROI ball radii (radii already scale with the grid; 1.0 gives V1 ≈ 900 voxels on the default grid); in (0, 4]" },
        OptDoc { name: "out", ty: "string", default: "none", meaning: "folder to write the dataset to when save is true (default: simulated-sub-SEED in out_dir()); naming it implies save: true" },
        OptDoc { name: "save", ty: "bool", default: "false", meaning: "write the dataset folder with its ground truth (about 0.5 GB at the default size); false: only return the Dataset, nothing on disk" },
    ],
    example: "let ds = simulate_subject(#{n_train: 40, n_test: 5, test_repeats: 2, image_size: 32});\nprint(ds.betas.shape);     // [50, voxels]\nprint(ds.captions[0]);",
};

pub fn register_simulation(engine: &mut Engine, help: &mut HelpRegistry, session: &Session) {
    help.add(&SIMULATE_SUBJECT);
    let s = session.clone();
    let simulate = move |opts: Map| -> RhaiResult<Dataset> {
        guard("simulate_subject", || {
            const OP: &str = "simulate_subject";
            let o = Opts::parse(&SIMULATE_SUBJECT, opts)?;
            let count = |key: &str| -> Result<usize> {
                let v = o.i64(key)?;
                usize::try_from(v).map_err(|_| Error::BadOption {
                    op: OP,
                    key: key.into(),
                    expected: "an integer ≥ 0".into(),
                    got: v.to_string(),
                })
            };
            let grid = o.opt_f64_list("grid")?.unwrap_or_default();
            let [gx, gy, gz] = grid.as_slice() else {
                return Err(Error::BadOption {
                    op: OP,
                    key: "grid".into(),
                    expected: "three integers".into(),
                    got: format!("{} values", grid.len()),
                });
            };
            let seed = o.i64("seed")?;
            let opts = crate::data::simulate::SimOptions {
                seed: seed as u64,
                n_train: count("n_train")?,
                n_test: count("n_test")?,
                test_repeats: count("test_repeats")?,
                n_extra_images: count("n_extra_images")?,
                n_extra_fmri: count("n_extra_fmri")?,
                image_size: count("image_size")?,
                snr: o.f64("snr")?,
                noise_fwhm: o.f64("noise_fwhm")?,
                grid: [*gx as usize, *gy as usize, *gz as usize],
                roi_size: o.f64("roi_size")?,
            };
            let sim = crate::data::simulate::simulate(&opts)?;
            // The subject in memory is what load_dataset reads back from the
            // folder (tests/it/simulate.rs checks it), so it is not re-read.
            // Scripts write only what they are asked to: the folder is written
            // when save is true or an out folder is named.
            let out = o.opt_string("out")?;
            let save = if o.is_set("save") {
                o.bool("save")?
            } else {
                out.is_some()
            };
            if !save && out.is_some() {
                return Err(Error::invalid(
                    OP,
                    "out names a folder to write, but save is false",
                ));
            }
            let mut ds = if save {
                let dir = match out {
                    Some(d) => s.output_path(&d),
                    None => s.output_path(&format!("simulated-sub-{seed}")),
                };
                let mut ds = crate::data::simulate::save(&sim, &dir, "simulated")?;
                s.wrote(&dir);
                ds.dir = dir;
                ds
            } else {
                sim.to_dataset("simulated")?
            };
            let dev = crate::device::current();
            ds.betas = Tensor(crate::tensor::tc(OP, ds.betas.0.f_to_device(dev))?);
            if let Some(st) = &mut ds.stimuli {
                st.data = Tensor(crate::tensor::tc(OP, st.data.0.f_to_device(dev))?);
            }
            Ok(ds)
        })
    };
    let simulate2 = simulate.clone();
    engine.register_fn("simulate_subject", move || simulate2(Map::new()));
    engine.register_fn("simulate_subject", simulate);
}

fn register_masks(engine: &mut Engine) {
    engine.register_fn(
        "smooth",
        |v: &mut Volume, fwhm: Dynamic| -> RhaiResult<Volume> {
            guard("smooth", || {
                let fwhm = if let Some(arr) = fwhm.read_lock::<Array>() {
                    array_to_values("smooth", &arr)?.0
                } else if let Ok(x) = fwhm.as_float() {
                    vec![x]
                } else if let Ok(i) = fwhm.as_int() {
                    vec![i as f64]
                } else {
                    return Err(Error::invalid(
                        "smooth",
                        format!(
                            "fwhm_mm is a number or an array of three, got {}",
                            fwhm.type_name()
                        ),
                    ));
                };
                crate::data::smooth::smooth("smooth", v, &fwhm)
            })
        },
    );
    engine.register_type_with_name::<Mask>("Mask");
    engine.register_fn("to_string", |m: &mut Mask| m.to_string());
    engine.register_fn("to_debug", |m: &mut Mask| m.to_string());
    engine.register_get("count", |m: &mut Mask| m.count() as i64);
    engine.register_get("shape", |m: &mut Mask| -> Array {
        m.shape().into_iter().map(Dynamic::from_int).collect()
    });
    engine.register_get("voxel_size", |m: &mut Mask| -> Array {
        m.voxel_size
            .iter()
            .map(|&x| Dynamic::from_float(x))
            .collect()
    });
    engine.register_get("affine", |m: &mut Mask| -> RhaiResult<Tensor> {
        guard("affine", || affine_tensor(&m.affine))
    });
    engine.register_get("data", |m: &mut Mask| -> RhaiResult<Tensor> {
        guard("data", || {
            let t = crate::tensor::tc("data", m.data.0.f_to_kind(tch::Kind::Float))?;
            Ok(Tensor(crate::tensor::tc(
                "data",
                t.f_to_device(crate::device::current()),
            )?))
        })
    });
    engine.register_get("volume", |m: &mut Mask| -> RhaiResult<Volume> {
        guard("volume", || m.to_volume("volume"))
    });
    engine.register_get("indices", |m: &mut Mask| -> RhaiResult<Tensor> {
        guard("indices", || m.c_order_indices("indices"))
    });

    engine.register_fn("load_mask", |path: &str| -> RhaiResult<Mask> {
        guard("load_mask", || Mask::load("load_mask", Path::new(path)))
    });
    engine.register_fn(
        "apply_mask",
        |v: &mut Volume, m: Mask| -> RhaiResult<Tensor> {
            guard("apply_mask", || {
                let t = m.apply("apply_mask", v)?;
                Ok(Tensor(crate::tensor::tc(
                    "apply_mask",
                    t.0.f_to_device(crate::device::current()),
                )?))
            })
        },
    );
    engine.register_fn("unmask", |x: Dynamic, m: Mask| -> RhaiResult<Volume> {
        guard("unmask", || {
            m.unmask("unmask", &to_tensor("unmask", "x", &x)?)
        })
    });
    engine.register_fn(
        "load_atlas",
        |image: &str, labels: &str| -> RhaiResult<Map> {
            guard("load_atlas", || {
                let rois = mask::load_atlas("load_atlas", Path::new(image), Path::new(labels))?;
                Ok(rois
                    .into_iter()
                    .map(|(n, m)| (n.into(), Dynamic::from(m)))
                    .collect())
            })
        },
    );
    for (name, union) in [("roi_union", true), ("roi_intersect", false)] {
        let op: &'static str = name;
        let combine = move |masks: &[Mask]| {
            if union {
                Mask::union(op, masks)
            } else {
                Mask::intersect(op, masks)
            }
        };
        engine.register_fn(name, move |a: Mask, b: Mask| -> RhaiResult<Mask> {
            guard(op, || combine(&[a, b]))
        });
        engine.register_fn(name, move |arr: Array| -> RhaiResult<Mask> {
            guard(op, || combine(&masks_from(op, &arr)?))
        });
    }
}

/// The images (ImageSet or N×3×H×W tensor) given as the argument `arg`, with
/// their ids (a tensor's are its row numbers).
pub(crate) fn images_of(op: &'static str, arg: &str, v: &Dynamic) -> Result<(Tensor, Vec<String>)> {
    if let Some(s) = v.read_lock::<ImageSet>() {
        return Ok((s.data.clone(), s.ids.clone()));
    }
    let t = to_tensor(op, arg, v)?;
    let n = images::as_batch(op, &t)?.size()[0] as usize;
    let width = n.saturating_sub(1).to_string().len();
    let ids = (0..n).map(|i| format!("{i:0width$}")).collect();
    Ok((t, ids))
}

fn register_images(engine: &mut Engine, session: &Session) {
    engine.register_type_with_name::<ImageSet>("ImageSet");
    engine.register_fn("to_string", |s: &mut ImageSet| s.to_string());
    engine.register_fn("to_debug", |s: &mut ImageSet| s.to_string());
    engine.register_get("data", |s: &mut ImageSet| s.data.clone());
    engine.register_get("ids", |s: &mut ImageSet| -> Array {
        s.ids.iter().map(|i| Dynamic::from(i.clone())).collect()
    });
    engine.register_get("len", |s: &mut ImageSet| s.ids.len() as i64);
    engine.register_fn(
        "select",
        |s: &mut ImageSet, idx: Dynamic| -> RhaiResult<ImageSet> {
            guard("select", || {
                let idx = to_indices("select", &idx)?;
                let n = s.ids.len() as i64;
                let mut ids = Vec::with_capacity(idx.len());
                for &i in &idx {
                    let j = if i < 0 { i + n } else { i };
                    if !(0..n).contains(&j) {
                        return Err(Error::invalid(
                            "select",
                            format!("index {i} is out of range for {n} images"),
                        ));
                    }
                    ids.push(s.ids[j as usize].clone());
                }
                let idx: Vec<i64> = idx.iter().map(|&i| if i < 0 { i + n } else { i }).collect();
                let data = crate::tensor::take("select", &s.data, 0, &idx)?;
                Ok(ImageSet { data, ids })
            })
        },
    );
    engine.register_fn(
        "image_set",
        |data: Dynamic, ids: Array| -> RhaiResult<ImageSet> {
            guard("image_set", || {
                let t = to_tensor("image_set", "data", &data)?;
                let b = images::as_batch("image_set", &t)?;
                let ids: Vec<String> = ids.iter().map(|d| d.to_string()).collect();
                if ids.len() as i64 != b.size()[0] {
                    return Err(Error::shape(
                        "image_set",
                        "ids",
                        format!("{} (one per image)", b.size()[0]),
                        ids.len().to_string(),
                    ));
                }
                let data = Tensor(crate::tensor::tc(
                    "image_set",
                    b.f_to_kind(tch::Kind::Float),
                )?);
                Ok(ImageSet { data, ids })
            })
        },
    );

    let load = |what: Dynamic, opts: Map| -> RhaiResult<ImageSet> {
        guard("load_images", || {
            const OP: &str = "load_images";
            let opts = Opts::parse(&LOAD_IMAGES, opts)?;
            let filter = filter_option(&opts)?;
            let size = size_option(OP, opts.raw("size"))?;
            let paths: Vec<PathBuf> = if let Some(a) = what.read_lock::<Array>() {
                a.iter().map(|p| PathBuf::from(p.to_string())).collect()
            } else if what.is_string() {
                let p = PathBuf::from(what.to_string());
                if p.is_dir() {
                    images::list_dir(OP, &p)?
                } else {
                    vec![p]
                }
            } else {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "expects a folder or an array of paths, got {}",
                        what.type_name()
                    ),
                ));
            };
            let mut set = images::load(OP, &paths, images::LoadOptions { size, filter })?;
            set.data = Tensor(crate::tensor::tc(
                OP,
                set.data.0.f_to_device(crate::device::current()),
            )?);
            Ok(set)
        })
    };
    engine.register_fn("load_images", move |w: Dynamic| load(w, Map::new()));
    engine.register_fn("load_images", load);

    let resize = |v: Dynamic, size: Dynamic, opts: Map| -> RhaiResult<ImageSet> {
        guard("resize_images", || {
            const OP: &str = "resize_images";
            let opts = Opts::parse(&RESIZE_IMAGES, opts)?;
            let filter = filter_option(&opts)?;
            let hw =
                size_option(OP, Some(size))?.ok_or_else(|| Error::invalid(OP, "give a size"))?;
            let (data, ids) = images_of(OP, "images", &v)?;
            let mut set = images::resize(OP, &data, ids, hw, filter)?;
            set.data = Tensor(crate::tensor::tc(
                OP,
                set.data.0.f_to_device(data.0.device()),
            )?);
            Ok(set)
        })
    };
    engine.register_fn("resize_images", move |v: Dynamic, size: Dynamic| {
        resize(v, size, Map::new())
    });
    engine.register_fn("resize_images", resize);

    let s = session.clone();
    let save = move |v: Dynamic, path: &str, opts: Map| -> RhaiResult<Dynamic> {
        guard("save_images", || {
            const OP: &str = "save_images";
            let opts = Opts::parse(&SAVE_IMAGES, opts)?;
            let ext = opts.choice("format", &["png", "jpg"])?;
            let single = v
                .read_lock::<Tensor>()
                .map(|t| t.ndim() == 3)
                .unwrap_or(false);
            let out = s.output_path(path);
            if single {
                s.check_replaceable(&out)?;
                let t = to_tensor(OP, "images", &v)?;
                let b = images::as_batch(OP, &t)?;
                let img = images::to_rgb8(OP, &crate::tensor::tc(OP, b.f_select(0, 0))?)?;
                crate::io::images::write_rgb(OP, &out, &img)?;
                s.wrote(&out);
                return Ok(Dynamic::from(out.display().to_string()));
            }
            let (data, ids) = images_of(OP, "images", &v)?;
            images::check_ids(OP, &ids)?;
            for id in &ids {
                s.check_replaceable(&out.join(format!("{id}.{ext}")))?;
            }
            let paths = images::save(OP, &data, &ids, &out, &ext)?;
            Ok(Dynamic::from_array(
                paths
                    .iter()
                    .map(|p| {
                        s.wrote(p);
                        Dynamic::from(p.display().to_string())
                    })
                    .collect(),
            ))
        })
    };
    let save2 = save.clone();
    engine.register_fn("save_images", move |v: Dynamic, p: &str| {
        save2(v, p, Map::new())
    });
    engine.register_fn("save_images", save);

    let grid = |v: Dynamic, opts: Map| -> RhaiResult<Tensor> {
        guard("image_grid", || {
            const OP: &str = "image_grid";
            let opts = Opts::parse(&IMAGE_GRID, opts)?;
            let cols = opts.i64("cols")?;
            let padding = opts.i64("padding")?;
            if cols < 1 || padding < 0 {
                return Err(Error::invalid(
                    OP,
                    format!("cols must be ≥ 1 and padding ≥ 0, got {cols} and {padding}"),
                ));
            }
            let (data, _) = images_of(OP, "images", &v)?;
            images::grid(
                OP,
                &data,
                cols as usize,
                padding as usize,
                opts.f64("pad_value")?,
            )
        })
    };
    engine.register_fn("image_grid", move |v: Dynamic| grid(v, Map::new()));
    engine.register_fn("image_grid", grid);
}

fn cell(c: &Cell) -> Dynamic {
    match c {
        Cell::Text(s) => Dynamic::from(s.clone()),
        Cell::Number(x) => Dynamic::from_float(*x),
        Cell::Texts(v) => Dynamic::from_array(v.iter().map(|s| Dynamic::from(s.clone())).collect()),
    }
}

fn size_option(op: &'static str, v: Option<Dynamic>) -> Result<Option<(usize, usize)>> {
    let Some(v) = v else { return Ok(None) };
    let bad = || Error::BadOption {
        op,
        key: if op == "load_images" || op == "resize_images" {
            "size"
        } else {
            "image_size"
        }
        .into(),
        expected: "a positive integer or [height, width]".into(),
        got: v.to_string(),
    };
    let hw = if let Ok(n) = v.as_int() {
        (n, n)
    } else if let Some(a) = v.read_lock::<Array>() {
        match a
            .iter()
            .map(|x| x.as_int().ok())
            .collect::<Option<Vec<_>>>()
        {
            Some(x) if x.len() == 2 => (x[0], x[1]),
            _ => return Err(bad()),
        }
    } else {
        return Err(bad());
    };
    if hw.0 < 1 || hw.1 < 1 {
        return Err(bad());
    }
    Ok(Some((hw.0 as usize, hw.1 as usize)))
}

fn register_datasets(engine: &mut Engine, session: &Session) {
    engine.register_type_with_name::<Dataset>("Dataset");
    let s = session.clone();
    engine.register_fn(
        "save",
        move |d: &mut Dataset, dir: &str| -> RhaiResult<String> {
            guard("save", || s.save(dir, |out| dataset::save(d, out, "save")))
        },
    );
    engine.register_fn("to_string", |d: &mut Dataset| d.to_string());
    engine.register_fn("to_debug", |d: &mut Dataset| d.to_string());
    engine.register_get("betas", |d: &mut Dataset| d.betas.clone());
    engine.register_get("len", |d: &mut Dataset| d.len() as i64);
    engine.register_get("name", |d: &mut Dataset| d.name.clone());
    engine.register_get("dir", |d: &mut Dataset| d.dir.display().to_string());
    engine.register_get("mask", |d: &mut Dataset| d.mask.clone());
    engine.register_get("trials", |d: &mut Dataset| -> Map {
        let mut m = Map::new();
        m.insert(
            "stimulus".into(),
            Dynamic::from_array(
                d.trials
                    .iter()
                    .map(|t| Dynamic::from(t.stimulus.clone()))
                    .collect(),
            ),
        );
        m.insert(
            "split".into(),
            Dynamic::from_array(
                d.trials
                    .iter()
                    .map(|t| Dynamic::from(t.split.clone()))
                    .collect(),
            ),
        );
        m.insert(
            "repeat".into(),
            Dynamic::from_array(
                d.trials
                    .iter()
                    .map(|t| Dynamic::from_int(t.repeat))
                    .collect(),
            ),
        );
        m
    });
    engine.register_get("images", |d: &mut Dataset| -> RhaiResult<Dynamic> {
        guard("images", || {
            Ok(d.trial_images("images")?
                .map_or(Dynamic::UNIT, Dynamic::from))
        })
    });
    engine.register_get("captions", |d: &mut Dataset| {
        d.captions.as_ref().map_or(Dynamic::UNIT, |v| {
            Dynamic::from_array(v.iter().map(cell).collect())
        })
    });
    engine.register_get("labels", |d: &mut Dataset| {
        d.labels.as_ref().map_or(Dynamic::UNIT, |v| {
            Dynamic::from_array(v.iter().map(cell).collect())
        })
    });
    engine.register_get("ratings", |d: &mut Dataset| -> RhaiResult<Map> {
        guard("ratings", || {
            d.ratings
                .iter()
                .map(|(k, v)| {
                    let t = Tensor::from_f64("ratings", v, &[v.len() as i64], tch::Kind::Float)?;
                    Ok((k.as_str().into(), Dynamic::from(t)))
                })
                .collect()
        })
    });
    engine.register_get("rois", |d: &mut Dataset| -> Map {
        d.rois
            .iter()
            .map(|(k, m)| (k.as_str().into(), Dynamic::from(m.clone())))
            .collect()
    });
    engine.register_fn("train", |d: &mut Dataset| -> RhaiResult<Dataset> {
        guard("train", || d.split("train", "train"))
    });
    engine.register_fn("test", |d: &mut Dataset| -> RhaiResult<Dataset> {
        guard("test", || d.split("test", "test"))
    });
    engine.register_fn(
        "average_repeats",
        |d: &mut Dataset| -> RhaiResult<Dataset> {
            guard("average_repeats", || d.average_repeats("average_repeats"))
        },
    );
    engine.register_fn("roi", |d: &mut Dataset, name: &str| -> RhaiResult<Tensor> {
        guard("roi", || d.roi("roi", name))
    });
    engine.register_fn(
        "select",
        |d: &mut Dataset, idx: Dynamic| -> RhaiResult<Dataset> {
            guard("select", || {
                d.select("select", &to_indices("select", &idx)?)
            })
        },
    );
    let load = |dir: &str, opts: Map| -> RhaiResult<Dataset> {
        guard("load_dataset", || {
            const OP: &str = "load_dataset";
            let o = Opts::parse(&LOAD_DATASET, opts)?;
            let filter = filter_option(&o)?;
            let opts = DatasetOptions {
                images: o.bool("images")?,
                image_size: size_option(OP, o.raw("image_size"))?,
                filter,
                drop_nan_voxels: o.choice("nan", &["error", "drop"])? == "drop",
            };
            let path = Path::new(dir);
            let images = ImageOptions {
                load: opts.images,
                size: opts.image_size,
                filter: opts.filter,
            };
            let ds = match public::detect(OP, path)? {
                Source::Layout => dataset::load(path, &opts)?,
                Source::Bdata(file) => {
                    let beside = file
                        .parent()
                        .map(|d| d.join("images"))
                        .filter(|d| d.is_dir());
                    god::load(
                        &[file],
                        &GodOptions {
                            images_dir: beside,
                            images,
                            test: TestSet::Perception,
                            voxels: "VoxelData".into(),
                            drop_nan_voxels: opts.drop_nan_voxels,
                        },
                    )?
                }
                Source::Nsd { root, subject } => {
                    let layout = nsd::Layout {
                        root: root.clone(),
                        subject,
                    };
                    nsd::load(
                        &root,
                        &NsdOptions {
                            subject,
                            sessions: None,
                            roi: "nsdgeneral".into(),
                            atlases: present_atlases(&layout),
                            betas: BetasFormat::Auto,
                            images,
                            captions: layout.captions("train2017").exists()
                                || layout.captions("val2017").exists(),
                            all_captions: false,
                        },
                    )?
                }
                Source::Bold5000 { root, subject } => bold5000::load(
                    &root,
                    &Bold5000Options {
                        subject,
                        tr: "34".into(),
                        images,
                        drop_nan_voxels: opts.drop_nan_voxels,
                    },
                )?,
            };
            to_current_device(OP, ds)
        })
    };
    engine.register_fn("load_dataset", move |d: &str| load(d, Map::new()));
    engine.register_fn("load_dataset", load);
    register_public(engine);
}

/// Betas and images on the session's device, as scripts expect them.
fn to_current_device(op: &'static str, mut ds: Dataset) -> Result<Dataset> {
    let dev = crate::device::current();
    ds.betas = Tensor(crate::tensor::tc(op, ds.betas.0.f_to_device(dev))?);
    if let Some(s) = &mut ds.stimuli {
        s.data = Tensor(crate::tensor::tc(op, s.data.0.f_to_device(dev))?);
    }
    Ok(ds)
}

/// NSD's atlases that are there for the subject (streams, prf-visualrois).
fn present_atlases(layout: &nsd::Layout) -> Vec<String> {
    ["streams", "prf-visualrois"]
        .iter()
        .filter(|a| layout.roi(a).exists())
        .map(|a| a.to_string())
        .collect()
}

fn image_options(o: &Opts, load: bool) -> Result<ImageOptions> {
    Ok(ImageOptions {
        load,
        size: size_option(o.op(), o.raw("image_size"))?,
        filter: filter_option(o)?,
    })
}

/// The subject option, or the one subject `detect` finds under root.
fn subject_option(o: &Opts, root: &Path) -> Result<usize> {
    if let Some(s) = o.opt_i64("subject")? {
        if s < 1 {
            return Err(Error::BadOption {
                op: o.op(),
                key: "subject".into(),
                expected: "a subject number ≥ 1".into(),
                got: s.to_string(),
            });
        }
        return Ok(s as usize);
    }
    match public::detect(o.op(), root)? {
        Source::Nsd { subject, .. } | Source::Bold5000 { subject, .. } => Ok(subject),
        _ => Err(Error::format(
            o.op(),
            root,
            "not the root of this dataset (see docs/datasets.md for the folders it expects)",
        )),
    }
}

fn register_public(engine: &mut Engine) {
    let god = |paths: Dynamic, opts: Map| -> RhaiResult<Dataset> {
        guard("load_god", || {
            const OP: &str = "load_god";
            let o = Opts::parse(&LOAD_GOD, opts)?;
            let files: Vec<PathBuf> = if paths.is_string() {
                vec![PathBuf::from(paths.to_string())]
            } else if let Some(a) = paths.read_lock::<Array>() {
                a.iter()
                    .map(|p| {
                        if p.is_string() {
                            Ok(PathBuf::from(p.to_string()))
                        } else {
                            Err(Error::invalid(
                                OP,
                                format!("paths must be strings, got {}", p.type_name()),
                            ))
                        }
                    })
                    .collect::<Result<_>>()?
            } else {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "expected a path or an array of paths, got {}",
                        paths.type_name()
                    ),
                ));
            };
            let images_dir = o.opt_string("images")?.map(PathBuf::from);
            let test = match o.choice("test", &["perception", "imagery"])?.as_str() {
                "imagery" => TestSet::Imagery,
                _ => TestSet::Perception,
            };
            let ds = god::load(
                &files,
                &GodOptions {
                    images: image_options(&o, images_dir.is_some())?,
                    images_dir,
                    test,
                    voxels: o.string("voxels")?,
                    drop_nan_voxels: o.choice("nan", &["error", "drop"])? == "drop",
                },
            )?;
            to_current_device(OP, ds)
        })
    };
    engine.register_fn("load_god", move |p: Dynamic| god(p, Map::new()));
    engine.register_fn("load_god", god);

    let nsd_fn = |root: &str, opts: Map| -> RhaiResult<Dataset> {
        guard("load_nsd", || {
            const OP: &str = "load_nsd";
            let o = Opts::parse(&LOAD_NSD, opts)?;
            let root = PathBuf::from(root);
            let subject = subject_option(&o, &root)?;
            let sessions = match o.opt_f64_list("sessions")? {
                None => None,
                Some(v) => Some(
                    v.iter()
                        .map(|&x| {
                            if x.fract() == 0.0 && x >= 1.0 {
                                Ok(x as usize)
                            } else {
                                Err(Error::BadOption {
                                    op: OP,
                                    key: "sessions".into(),
                                    expected: "1-based session numbers".into(),
                                    got: x.to_string(),
                                })
                            }
                        })
                        .collect::<Result<Vec<_>>>()?,
                ),
            };
            let layout = nsd::Layout {
                root: root.clone(),
                subject,
            };
            let atlases = match o.opt_string_list("atlases")? {
                Some(a) => a,
                None => present_atlases(&layout),
            };
            let betas = match o.choice("betas", &["auto", "nifti", "hdf5"])?.as_str() {
                "nifti" => BetasFormat::Nifti,
                "hdf5" => BetasFormat::Hdf5,
                _ => BetasFormat::Auto,
            };
            let ds = nsd::load(
                &root,
                &NsdOptions {
                    subject,
                    sessions,
                    roi: o.string("roi")?,
                    atlases,
                    betas,
                    images: image_options(&o, o.bool("images")?)?,
                    captions: o.bool("captions")?,
                    all_captions: o.bool("all_captions")?,
                },
            )?;
            to_current_device(OP, ds)
        })
    };
    engine.register_fn("load_nsd", move |r: &str| nsd_fn(r, Map::new()));
    engine.register_fn("load_nsd", nsd_fn);

    let bold = |root: &str, opts: Map| -> RhaiResult<Dataset> {
        guard("load_bold5000", || {
            const OP: &str = "load_bold5000";
            let o = Opts::parse(&LOAD_BOLD5000, opts)?;
            let root = PathBuf::from(root);
            let subject = subject_option(&o, &root)?;
            let tr = match o.raw("tr") {
                Some(v) if v.is_int() => v.as_int().unwrap_or(0).to_string(),
                Some(v) if v.is_string() => v.to_string(),
                Some(v) => {
                    return Err(Error::BadOption {
                        op: OP,
                        key: "tr".into(),
                        expected: "1–5 or 34".into(),
                        got: v.type_name().into(),
                    })
                }
                None => "34".into(),
            };
            let ds = bold5000::load(
                &root,
                &Bold5000Options {
                    subject,
                    tr,
                    images: image_options(&o, o.bool("images")?)?,
                    drop_nan_voxels: o.choice("nan", &["error", "drop"])? == "drop",
                },
            )?;
            to_current_device(OP, ds)
        })
    };
    engine.register_fn("load_bold5000", move |r: &str| bold(r, Map::new()));
    engine.register_fn("load_bold5000", bold);
}

// ---------------------------------------------------------------------------
// resample_to_img: one image on another's voxel grid (src/data/resample.rs).

pub static RESAMPLE_TO_IMG: FnDoc = FnDoc {
    name: "resample_to_img",
    domain: "data",
    signature: "resample_to_img(source: Volume | Mask, target: Volume | Mask, opts?: map) -> Volume",
    summary: "The source image on the target's voxel grid (its shape and affine), equal to nilearn's resample_to_img: each target voxel is mapped through the two affines (oblique ones too) into the source and interpolated there; voxels outside the source get fill_value. A mask source is resampled as its 0/1 volume (threshold the result, or use nearest). 4-D sources are resampled volume by volume.",
    options: &[
        OptDoc {
            name: "interpolation",
            ty: "string",
            default: "\"continuous\"",
            meaning: "\"continuous\" (cubic B-spline), \"linear\" (trilinear) or \"nearest\" (labels, masks)",
        },
        OptDoc {
            name: "fill_value",
            ty: "float",
            default: "0.0",
            meaning: "value of target voxels that fall outside the source",
        },
    ],
    example: "let a = load_nifti(save_nifti(randn([10, 12, 8]), \"a.nii\", #{affine: eye(4) * 3.0}));\nlet b = load_nifti(save_nifti(zeros([15, 18, 12]), \"b.nii\", #{affine: eye(4) * 2.0}));\nlet on_b = resample_to_img(a, b, #{interpolation: \"linear\"});\nprint(on_b.shape);   // [15, 18, 12]",
};

/// A volume or mask argument of resample_to_img as a volume.
fn image_argument(name: &str, v: &Dynamic) -> Result<Volume> {
    if let Some(vol) = v.read_lock::<Volume>() {
        return Ok(vol.clone());
    }
    if let Some(m) = v.read_lock::<Mask>() {
        return m.to_volume("resample_to_img");
    }
    Err(Error::invalid(
        "resample_to_img",
        format!("{name}: expected a Volume or a Mask, got {}", v.type_name()),
    ))
}

fn register_resampling(engine: &mut Engine, help: &mut HelpRegistry) {
    use crate::data::resample::{resample, Interpolation};
    help.add(&RESAMPLE_TO_IMG);
    let run = |source: Dynamic, target: Dynamic, opts: Map| -> RhaiResult<Volume> {
        guard("resample_to_img", || {
            let opts = Opts::parse(&RESAMPLE_TO_IMG, opts)?;
            let interpolation = Interpolation::parse(&opts.string("interpolation")?)?;
            let fill = opts.f64("fill_value")?;
            let source = image_argument("source", &source)?;
            let target = image_argument("target", &target)?;
            let ts = target.shape();
            let shape = [ts[0] as usize, ts[1] as usize, ts[2] as usize];
            resample(&source, target.affine, shape, interpolation, fill)
        })
    };
    engine.register_fn("resample_to_img", move |s: Dynamic, t: Dynamic| {
        run(s, t, Map::new())
    });
    engine.register_fn("resample_to_img", run);
}
