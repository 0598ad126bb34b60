//! ResNet18 and ResNet50 as torchvision builds them, with torchvision's
//! parameter names, so `model.state_dict()` exported to safetensors loads
//! here without renaming and weights saved here load into torchvision with
//! `strict=True`.
//!
//! Feature stages for RSA (the BNU paper's 22 ResNet18 "layers"): every
//! convolution including the downsampling ones, each taken after its batch
//! normalisation (what the next operation receives, before the ReLU), then the
//! flattened global average pool and the fc output. ResNet18: 17 + 3 + 2 = 22
//! stages; ResNet50: 49 + 4 + 2 = 55.

use std::path::Path;

use tch::nn::{self, ConvConfig};
use tch::{Kind, Tensor as TchTensor};

use crate::error::{Error, Result};
use crate::tensor::{shape_text, tc};

const OP: &str = "resnet";

/// ImageNet channel means and standard deviations, as torchvision normalises.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    ResNet18,
    ResNet50,
}

impl Arch {
    pub fn parse(op: &'static str, name: &str) -> Result<Arch> {
        match name {
            "resnet18" => Ok(Arch::ResNet18),
            "resnet50" => Ok(Arch::ResNet50),
            other => Err(Error::invalid(
                op,
                format!("arch must be \"resnet18\" or \"resnet50\", got \"{other}\""),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet50 => "resnet50",
        }
    }

    fn blocks(self) -> [usize; 4] {
        match self {
            Arch::ResNet18 => [2, 2, 2, 2],
            Arch::ResNet50 => [3, 4, 6, 3],
        }
    }

    fn expansion(self) -> i64 {
        match self {
            Arch::ResNet18 => 1,
            Arch::ResNet50 => 4,
        }
    }
}

struct ConvBn {
    name: String,
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBn {
    fn new(
        p: &nn::Path,
        conv: &str,
        bn: &str,
        name: String,
        c_in: i64,
        c_out: i64,
        k: i64,
        stride: i64,
        padding: i64,
    ) -> ConvBn {
        let cfg = ConvConfig {
            stride,
            padding,
            bias: false,
            ..Default::default()
        };
        ConvBn {
            name,
            conv: nn::conv2d(p / conv, c_in, c_out, k, cfg),
            bn: nn::batch_norm2d(p / bn, c_out, Default::default()),
        }
    }

    fn forward(
        &self,
        x: &TchTensor,
        train: bool,
        capture: &mut Option<&mut Vec<(String, TchTensor)>>,
    ) -> TchTensor {
        let y = x.apply(&self.conv).apply_t(&self.bn, train);
        if let Some(c) = capture.as_deref_mut() {
            c.push((self.name.clone(), y.shallow_clone()));
        }
        y
    }
}

struct Block {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    fn forward(
        &self,
        x: &TchTensor,
        train: bool,
        capture: &mut Option<&mut Vec<(String, TchTensor)>>,
    ) -> TchTensor {
        let mut out = x.shallow_clone();
        let last = self.convs.len() - 1;
        for (i, cb) in self.convs.iter().enumerate() {
            out = cb.forward(&out, train, capture);
            if i < last {
                out = out.relu();
            }
        }
        let identity = match &self.downsample {
            Some(d) => d.forward(x, train, capture),
            None => x.shallow_clone(),
        };
        (out + identity).relu()
    }
}

pub struct ResNet {
    pub vs: nn::VarStore,
    pub arch: Arch,
    pub classes: i64,
    stem: ConvBn,
    blocks: Vec<Block>,
    fc: nn::Linear,
}

impl ResNet {
    /// A freshly initialised network on `device` (weights from libtorch's RNG:
    /// reproducible under a seed).
    pub fn new(arch: Arch, classes: i64, device: tch::Device) -> Result<ResNet> {
        if classes < 1 {
            return Err(Error::invalid(
                OP,
                format!("classes must be ≥ 1, got {classes}"),
            ));
        }
        // The fc layer is (512 × expansion) × classes float32 weights.
        crate::cancel::reserve(
            OP,
            &format!("the fc layer for {classes} classes"),
            classes as f64 * (512 * arch.expansion() + 1) as f64 * 4.0,
        )?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let stem = ConvBn::new(&root, "conv1", "bn1", "conv1".into(), 3, 64, 7, 2, 3);
        let exp = arch.expansion();
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (li, &n) in arch.blocks().iter().enumerate() {
            let planes = 64 << li;
            let layer = format!("layer{}", li + 1);
            for bi in 0..n {
                let stride = if li > 0 && bi == 0 { 2 } else { 1 };
                let p = &root / layer.as_str() / bi;
                let prefix = format!("{layer}.{bi}");
                let convs = match arch {
                    Arch::ResNet18 => vec![
                        ConvBn::new(
                            &p,
                            "conv1",
                            "bn1",
                            format!("{prefix}.conv1"),
                            c_in,
                            planes,
                            3,
                            stride,
                            1,
                        ),
                        ConvBn::new(
                            &p,
                            "conv2",
                            "bn2",
                            format!("{prefix}.conv2"),
                            planes,
                            planes,
                            3,
                            1,
                            1,
                        ),
                    ],
                    Arch::ResNet50 => vec![
                        ConvBn::new(
                            &p,
                            "conv1",
                            "bn1",
                            format!("{prefix}.conv1"),
                            c_in,
                            planes,
                            1,
                            1,
                            0,
                        ),
                        ConvBn::new(
                            &p,
                            "conv2",
                            "bn2",
                            format!("{prefix}.conv2"),
                            planes,
                            planes,
                            3,
                            stride,
                            1,
                        ),
                        ConvBn::new(
                            &p,
                            "conv3",
                            "bn3",
                            format!("{prefix}.conv3"),
                            planes,
                            planes * exp,
                            1,
                            1,
                            0,
                        ),
                    ],
                };
                let downsample = (stride != 1 || c_in != planes * exp).then(|| {
                    let d = &p / "downsample";
                    ConvBn::new(
                        &d,
                        "0",
                        "1",
                        format!("{prefix}.downsample"),
                        c_in,
                        planes * exp,
                        1,
                        stride,
                        0,
                    )
                });
                blocks.push(Block { convs, downsample });
                c_in = planes * exp;
            }
        }
        let fc = nn::linear(&root / "fc", c_in, classes, Default::default());
        Ok(ResNet {
            vs,
            arch,
            classes,
            stem,
            blocks,
            fc,
        })
    }

    /// Names of the feature stages, in network order.
    pub fn stage_names(&self) -> Vec<String> {
        let mut names = vec![self.stem.name.clone()];
        for b in &self.blocks {
            names.extend(b.convs.iter().map(|c| c.name.clone()));
            if let Some(d) = &b.downsample {
                names.push(d.name.clone());
            }
        }
        names.push("avgpool".into());
        names.push("fc".into());
        names
    }

    /// The forward pass; with `stop`, it returns as soon as that stage has
    /// been captured (the rest of the network is not computed).
    fn run(
        &self,
        x: &TchTensor,
        train: bool,
        mut capture: Option<&mut Vec<(String, TchTensor)>>,
        stop: Option<&str>,
    ) -> TchTensor {
        let reached = |c: &Option<&mut Vec<(String, TchTensor)>>| match (stop, c) {
            (Some(s), Some(c)) => c.iter().any(|(n, _)| n == s),
            _ => false,
        };
        let mut y = self.stem.forward(x, train, &mut capture);
        if reached(&capture) {
            return y;
        }
        y = y.relu().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for b in &self.blocks {
            y = b.forward(&y, train, &mut capture);
            if reached(&capture) {
                return y;
            }
        }
        let pooled = y.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        if let Some(c) = capture.as_deref_mut() {
            c.push(("avgpool".into(), pooled.shallow_clone()));
        }
        let logits = pooled.apply(&self.fc);
        if let Some(c) = capture.as_deref_mut() {
            c.push(("fc".into(), logits.shallow_clone()));
        }
        logits
    }

    /// Logits for already normalised images (N×3×H×W), as torchvision's forward.
    pub fn forward_t(&self, x: &TchTensor, train: bool) -> TchTensor {
        self.run(x, train, None, None)
    }

    /// Every stage's activations for a batch (inference mode).
    pub fn stages(&self, x: &TchTensor) -> Vec<(String, TchTensor)> {
        let mut out = Vec::new();
        let _logits = self.run(x, false, Some(&mut out), None);
        out
    }

    /// The stage for a layer name: "layerK" is the end of that residual
    /// layer (its last block's last convolution, after batch norm); any
    /// other name must be a stage name.
    pub fn layer_stage(&self, op: &'static str, layer: &str) -> Result<String> {
        let names = self.stage_names();
        let prefix = format!("{layer}.");
        if layer.starts_with("layer") {
            if let Some(last) = names
                .iter()
                .rev()
                .find(|n| n.starts_with(&prefix) && !n.contains("downsample"))
            {
                return Ok(last.clone());
            }
        }
        if names.iter().any(|n| n == layer) {
            return Ok(layer.to_string());
        }
        Err(Error::invalid(
            op,
            format!(
                "no ResNet stage \"{layer}\"; use layer1 … layer4 or one of {}",
                names.join(", ")
            ),
        ))
    }

    /// The stages up to and including `last` (inference mode; the rest of
    /// the network is not computed). Gradients flow to `x`, so a frozen
    /// network serves as a perceptual loss.
    pub fn stages_until(&self, x: &TchTensor, last: &str) -> Result<Vec<(String, TchTensor)>> {
        if !self.stage_names().iter().any(|n| n == last) {
            return Err(Error::invalid(
                OP,
                format!(
                    "no stage named \"{last}\"; stages are {}",
                    self.stage_names().join(", ")
                ),
            ));
        }
        let mut out = Vec::new();
        let _ = self.run(x, false, Some(&mut out), Some(last));
        Ok(out)
    }

    /// A network with torchvision's initialisation (convolutions Kaiming
    /// normal, fan-out; batch norms 1 and 0; fc uniform ±1/√fan-in) drawn
    /// from SplitMix64(`seed`) rather than libtorch's generator, so the same
    /// seed gives the same weights without touching the script's random
    /// stream (a fixed random feature network for scores and losses).
    pub fn seeded(arch: Arch, classes: i64, device: tch::Device, seed: u64) -> Result<ResNet> {
        let net = ResNet::new(arch, classes, device)?;
        net.draw_seeded(seed, None)?;
        Ok(net)
    }

    /// [`ResNet::seeded`]'s weights for the stages up to and including
    /// `last` (a stage name or "layerK", as [`ResNet::layer_stage`]; the same draws in the same order, so those stages compute
    /// exactly what `seeded`'s do); the later layers keep libtorch's
    /// initialisation. For a fixed feature network read only up to `last`
    /// (a perceptual loss on the first stages): drawing all of a ResNet18's
    /// 11.7 M weights takes half a second of CPU, its stem and layer1 a
    /// hundredth of that.
    pub fn seeded_until(
        arch: Arch,
        classes: i64,
        device: tch::Device,
        seed: u64,
        last: &str,
    ) -> Result<ResNet> {
        let net = ResNet::new(arch, classes, device)?;
        let last = net.layer_stage(OP, last)?;
        net.draw_seeded(seed, Some(&last))?;
        Ok(net)
    }

    /// Variable-name prefixes of the stem and the blocks up to the one that
    /// holds stage `last` (None: the whole network, for avgpool and fc).
    fn prefixes_until(&self, last: &str) -> Option<Vec<String>> {
        let mut prefixes = vec!["conv1.".to_string(), "bn1.".to_string()];
        if last == self.stem.name {
            return Some(prefixes);
        }
        for b in &self.blocks {
            // Stage names are "layerL.B.conv1", …: the block's variables start "layerL.B.".
            let first = &b.convs[0].name;
            let block = first.rsplit_once('.').map_or(first.as_str(), |(p, _)| p);
            prefixes.push(format!("{block}."));
            let holds = b.convs.iter().any(|c| c.name == last)
                || b.downsample.as_ref().is_some_and(|d| d.name == last);
            if holds {
                return Some(prefixes);
            }
        }
        None
    }

    /// Overwrites the variables, in sorted-name order, with torchvision's
    /// initialisation drawn from SplitMix64(`seed`); with `until`, it stops
    /// after the last variable the stages up to that one use (earlier names
    /// that they do not use, such as fc's, are still drawn, so the stream
    /// and every drawn value are as without `until`).
    fn draw_seeded(&self, seed: u64, until: Option<&str>) -> Result<()> {
        let device = self.vs.device();
        let mut rng = crate::random::SplitMix64::new(seed);
        let mut vars: Vec<(String, TchTensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(prefixes) = until.and_then(|l| self.prefixes_until(l)) {
            let used = vars
                .iter()
                .rposition(|(n, _)| prefixes.iter().any(|p| n.starts_with(p)))
                .map_or(0, |i| i + 1);
            vars.truncate(used);
        }
        tch::no_grad(|| -> Result<()> {
            for (name, mut v) in vars {
                let size = v.size();
                let n: i64 = size.iter().product();
                let values: Vec<f32> = if size.len() == 4 {
                    let std = (2.0 / (size[0] * size[2] * size[3]) as f64).sqrt();
                    (0..n).map(|_| (std * rng.normal()) as f32).collect()
                } else if name.starts_with("fc.") {
                    let fan_in = self.fc.ws.size()[1] as f64;
                    let bound = 1.0 / fan_in.sqrt();
                    (0..n)
                        .map(|_| (bound * (2.0 * rng.uniform() - 1.0)) as f32)
                        .collect()
                } else if name.ends_with(".weight") || name.ends_with("running_var") {
                    vec![1.0; n as usize]
                } else {
                    vec![0.0; n as usize]
                };
                let t = tc(OP, TchTensor::f_from_slice(&values))?;
                let t = tc(
                    OP,
                    tc(OP, t.f_reshape(size.as_slice()))?.f_to_device(device),
                )?;
                tc(OP, v.f_copy_(&t))?;
            }
            Ok(())
        })
    }

    /// Parameters and buffers with torchvision's names (num_batches_tracked
    /// added, as torchvision's state_dict has it).
    pub fn state_dict(&self) -> Vec<(String, TchTensor)> {
        let mut vars: Vec<(String, TchTensor)> = self.vs.variables().into_iter().collect();
        let bns: Vec<String> = vars
            .iter()
            .filter_map(|(n, _)| n.strip_suffix(".running_var").map(str::to_string))
            .collect();
        for bn in bns {
            vars.push((format!("{bn}.num_batches_tracked"), TchTensor::from(0i64)));
        }
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        const OP: &str = "save";
        let vars: Vec<(String, TchTensor)> = self
            .state_dict()
            .into_iter()
            .map(|(n, t)| {
                Ok((
                    n,
                    tc(OP, tc(OP, t.f_to_device(tch::Device::Cpu))?.f_contiguous())?,
                ))
            })
            .collect::<Result<_>>()?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::sandbox::check_write(OP, parent.as_ref())?;
            std::fs::create_dir_all(parent).map_err(|e| Error::io(OP, parent, e))?;
        }
        tc(OP, TchTensor::write_safetensors(&vars, path))
    }

    /// Loads torchvision-named weights. Architecture and class count are read
    /// from the file; `classes` different from the file's starts a fresh fc
    /// (fine-tuning a pretrained network on new labels).
    pub fn load(path: &Path, classes: Option<i64>, device: tch::Device) -> Result<(ResNet, bool)> {
        const OP: &str = "load_resnet";
        if !path.exists() {
            return Err(Error::io(
                OP,
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"),
            ));
        }
        // The sandbox rule and a folder's plain message, before libtorch reads it.
        crate::io::open_read(OP, path)?;
        let tensors = TchTensor::read_safetensors(path).map_err(|e| {
            Error::format(
                OP,
                path,
                format!(
                    "not a readable safetensors file: {}",
                    e.to_string().lines().next().unwrap_or("")
                ),
            )
        })?;
        let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        let arch = if find("layer1.0.conv3.weight").is_some() {
            Arch::ResNet50
        } else {
            Arch::ResNet18
        };
        let fc = find("fc.weight").ok_or_else(|| {
            Error::format(
                OP,
                path,
                "no fc.weight: not a torchvision ResNet state_dict",
            )
        })?;
        let file_classes = fc.size()[0];
        let classes = classes.unwrap_or(file_classes);
        let fresh_fc = classes != file_classes;
        let model = ResNet::new(arch, classes, device)?;
        let mut missing = Vec::new();
        tch::no_grad(|| -> Result<()> {
            for (name, var) in model.vs.variables() {
                if fresh_fc && name.starts_with("fc.") {
                    continue;
                }
                match find(&name) {
                    None => missing.push(name),
                    Some(t) if t.size() != var.size() => {
                        return Err(Error::format(
                            OP,
                            path,
                            format!(
                                "{name} has shape {} in the file, the {} expects {}",
                                shape_text(&t.size()),
                                arch.name(),
                                shape_text(&var.size())
                            ),
                        ));
                    }
                    Some(t) => {
                        let mut var = var;
                        let t = tc(OP, t.f_to_kind(var.kind()))?;
                        tc(OP, var.f_copy_(&t))?;
                    }
                }
            }
            Ok(())
        })?;
        if !missing.is_empty() {
            missing.sort();
            return Err(Error::format(
                OP,
                path,
                format!(
                    "{} weights missing for {}, e.g. {}",
                    missing.len(),
                    arch.name(),
                    missing
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok((model, fresh_fc))
    }
}

/// Checks an image batch and normalises it with ImageNet statistics.
pub fn prepare_images(
    op: &'static str,
    images: &TchTensor,
    device: tch::Device,
) -> Result<TchTensor> {
    let s = images.size();
    if s.len() != 4 || s[1] != 3 || s[2] < 16 || s[3] < 16 {
        return Err(Error::shape(
            op,
            "images",
            "N×3×H×W with H, W ≥ 16 (RGB in [0, 1])",
            shape_text(&s),
        ));
    }
    let x = tc(
        op,
        tc(op, images.f_to_kind(Kind::Float))?.f_to_device(device),
    )?;
    let mean = tc(op, TchTensor::f_from_slice(&IMAGENET_MEAN))?
        .to_kind(Kind::Float)
        .to_device(device)
        .reshape([1, 3, 1, 1]);
    let std = tc(op, TchTensor::f_from_slice(&IMAGENET_STD))?
        .to_kind(Kind::Float)
        .to_device(device)
        .reshape([1, 3, 1, 1]);
    Ok((x - mean) / std)
}

/// Valence classes from ratings on a 1–9 scale with the BNU bins [4, 6]:
/// rating < 4 → 0 (negative), 4 ≤ rating ≤ 6 → 1 (neutral), rating > 6 → 2
/// (positive). In general the class is the number of edges strictly below
/// the rating, except that a rating equal to the first edge is class 1, so
/// both edges of the BNU neutral range are neutral.
pub fn labels_from_ratings(ratings: &[f64], bins: &[f64]) -> Result<Vec<i64>> {
    const OP: &str = "labels_from_ratings";
    if bins.is_empty() || bins.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::invalid(
            OP,
            format!("bins must be increasing edges, got {bins:?}"),
        ));
    }
    ratings
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            if !r.is_finite() {
                return Err(Error::invalid(
                    OP,
                    format!("rating {i} is {r}; remove or impute missing ratings first"),
                ));
            }
            let below = bins.iter().filter(|&&e| r > e).count() as i64;
            let on_lower_edge = bins.first().is_some_and(|&e| r == e);
            Ok(if on_lower_edge {
                1.min(bins.len() as i64)
            } else {
                below
            })
        })
        .collect()
}
