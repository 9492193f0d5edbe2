//! The client's per-example loss `L(theta, x)` and its first-order
//! gradients, in f64.
//!
//! Everything gradient leakage needs reduces to one call: "the gradients of
//! `L` with respect to the parameters and to the input, at parameters
//! `theta + dtheta` and input `x`". burn 0.22 has no module-wide dtype cast,
//! so [`NetworkLoss::new`] rebuilds every float parameter as an f64 leaf with
//! a small [`ModuleMapper`]; flex then runs the convolutions, the forward and
//! the backward pass in f64 (measured: a central difference of the loss
//! matches the autodiff directional derivative to 1e-8 relative at step
//! 1e-3, which f32 cannot reach). Host vectors are `Vec<f64>` in the order of
//! burn's module traversal, which is the same for visitors and mappers.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Gradients};

use super::LeakageError;
use crate::model::{BlockSpec, SplitModel};

/// The per-example loss the client differentiates.
#[derive(Clone, Debug, PartialEq)]
pub enum LossKind {
    /// `-log softmax(f(x))[label]`, the classification loss of DLG.
    CrossEntropy {
        /// The class.
        label: u32,
    },
    /// `0.5 * ||f(x) - target||^2` (regression; the closed-form test case).
    Squared {
        /// The target, one value per model output.
        target: Vec<f64>,
    },
}

/// Gradients of the loss at one point.
#[derive(Clone, Debug, PartialEq)]
pub struct LossGradients {
    /// The loss value.
    pub loss: f64,
    /// `d L / d theta`, flat in traversal order (length P).
    pub params: Vec<f64>,
    /// `d L / d x`, flat `[C, H, W]` (length D).
    pub input: Vec<f64>,
}

/// A differentiable per-example loss with first-order gradients: all the
/// finite-difference machinery needs.
pub trait GradientOracle {
    /// Number of parameters P.
    fn num_params(&self) -> usize;
    /// Number of input values D.
    fn input_len(&self) -> usize;
    /// The parameters theta (length P).
    fn params(&self) -> &[f64];
    /// Loss and gradients at parameters `theta + dtheta` (or `theta` when
    /// `dtheta` is `None`) and input `x` (length D).
    fn gradients(&self, dtheta: Option<&[f64]>, x: &[f64]) -> LossGradients;
    /// `d L / d theta` at `(theta, x)` alone (an implementation may skip the
    /// input gradient).
    fn param_gradient(&self, x: &[f64]) -> Vec<f64> {
        self.gradients(None, x).params
    }
    /// `d L / d x` at `(theta + dtheta, x)` alone (an implementation may skip
    /// the parameter gradients).
    fn input_gradient(&self, dtheta: Option<&[f64]>, x: &[f64]) -> Vec<f64> {
        self.gradients(dtheta, x).input
    }
}

/// Where one parameter tensor sits in the flat parameter vector.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSlot {
    /// First index in the flat vector.
    pub offset: usize,
    /// The tensor's shape.
    pub shape: Vec<usize>,
}

impl ParamSlot {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for an empty tensor.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index range in the flat vector.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// A [`SplitModel`] with a per-example loss, evaluated in f64 on an
/// autodiff device.
#[derive(Clone, Debug)]
pub struct NetworkLoss {
    model: SplitModel,
    device: Device,
    input_shape: Vec<usize>,
    slots: Vec<ParamSlot>,
    theta: Vec<f64>,
    loss: LossKind,
}

/// Replaces every float parameter by an f64 leaf (optionally shifted by a
/// slice of `shift`) on `device`, recording the layout.
struct ToLeaves<'a> {
    device: &'a Device,
    shift: Option<&'a [f64]>,
    slots: Vec<ParamSlot>,
    values: Vec<f64>,
}

impl ModuleMapper for ToLeaves<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (device, shift) = (self.device, self.shift);
        let mut slot = None;
        let mut values = Vec::new();
        let param = param.map(|t| {
            let shape = t.dims();
            let mut v: Vec<f64> = t
                .into_data()
                .convert::<f64>()
                .try_into_vec::<f64>()
                .expect("expected float parameter data");
            let offset = self.values.len();
            if let Some(s) = shift {
                let len = v.len();
                for (a, b) in v.iter_mut().zip(&s[offset..offset + len]) {
                    *a += b;
                }
            }
            values.clone_from(&v);
            slot = Some(ParamSlot {
                offset,
                shape: shape.to_vec(),
            });
            Tensor::from_data(TensorData::new(v, shape), (device, DType::F64)).require_grad()
        });
        self.slots.extend(slot);
        self.values.extend(values);
        param
    }
}

/// Replaces every float parameter by an f64 leaf holding the next values of
/// `values` (the tensors' contents are not read, only their shapes).
struct FromHost<'a> {
    device: &'a Device,
    values: &'a [f64],
    offset: usize,
    require_grad: bool,
}

impl ModuleMapper for FromHost<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let shape = t.dims();
            let n: usize = shape.iter().product();
            let v = self.values[self.offset..self.offset + n].to_vec();
            self.offset += n;
            let leaf = Tensor::from_data(TensorData::new(v, shape), (self.device, DType::F64));
            if self.require_grad {
                leaf.require_grad()
            } else {
                leaf
            }
        })
    }
}

/// Collects the gradients of every float parameter in traversal order.
struct CollectGrads<'a> {
    grads: &'a Gradients,
    out: Vec<f64>,
}

impl ModuleVisitor for CollectGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        match value.grad(self.grads) {
            Some(g) => self.out.extend(host(g)),
            None => self
                .out
                .extend(std::iter::repeat_n(0.0, value.shape().num_elements())),
        }
    }
}

/// A tensor's values as f64 on the host.
fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("expected float tensor data")
}

/// Checks that a model fits the setting: no batch-norm anywhere (the
/// client's gradient is of one example, which has no batch statistics).
pub fn check_blocks(blocks: &[BlockSpec]) -> Result<(), LeakageError> {
    for (i, b) in blocks.iter().enumerate() {
        let bn = match b {
            BlockSpec::Conv(c) => c.batch_norm,
            BlockSpec::Linear(l) => l.batch_norm,
            BlockSpec::Residual(_) => true,
            BlockSpec::MaxPool(_) | BlockSpec::GlobalAvgPool(_) => false,
        };
        if bn {
            return Err(LeakageError::Model(format!(
                "block {} has batch-norm; gradient leakage needs a model without it (the client's gradient is of one example)",
                i + 1
            )));
        }
    }
    Ok(())
}

impl NetworkLoss {
    /// Copies `model`'s parameters to f64 leaves on `device` (an autodiff
    /// device) and attaches the loss.
    ///
    /// Errors if the model has batch-norm (a shared gradient of one example
    /// has no batch statistics) or if `loss` does not fit its output.
    pub fn new(model: &SplitModel, loss: LossKind, device: &Device) -> Result<Self, LeakageError> {
        let specs = model.block_specs();
        let outputs = model
            .infos()
            .map_err(|e| LeakageError::Model(e.to_string()))?
            .last()
            .map(|b| b.output.iter().product::<usize>())
            .unwrap_or(0);
        check_blocks(&specs)?;
        let mut leaves = ToLeaves {
            device,
            shift: None,
            slots: Vec::new(),
            values: Vec::new(),
        };
        let model = model.clone().fork(device).map(&mut leaves);
        let this = Self {
            input_shape: model.input.clone(),
            model,
            device: device.clone(),
            slots: leaves.slots,
            theta: leaves.values,
            loss: LossKind::CrossEntropy { label: 0 },
        };
        this.with_loss(loss, outputs)
    }

    fn with_loss(mut self, loss: LossKind, outputs: usize) -> Result<Self, LeakageError> {
        match &loss {
            LossKind::CrossEntropy { label } if (*label as usize) >= outputs => {
                return Err(LeakageError::Model(format!(
                    "label {label} is out of range for a model with {outputs} outputs"
                )));
            }
            LossKind::Squared { target } if target.len() != outputs => {
                return Err(LeakageError::Model(format!(
                    "squared-loss target has {} values, the model has {outputs} outputs",
                    target.len()
                )));
            }
            _ => {}
        }
        self.loss = loss;
        Ok(self)
    }

    /// The same network with another loss (e.g. another label).
    pub fn relabel(&self, loss: LossKind) -> Result<Self, LeakageError> {
        let outputs = self.outputs();
        self.clone().with_loss(loss, outputs)
    }

    /// Number of model outputs (classes).
    pub fn outputs(&self) -> usize {
        self.model
            .infos()
            .ok()
            .and_then(|i| i.last().map(|b| b.output.iter().product()))
            .unwrap_or(0)
    }

    /// The loss in use.
    pub fn loss_kind(&self) -> &LossKind {
        &self.loss
    }

    /// Layout of the parameter tensors in the flat vector.
    pub fn slots(&self) -> &[ParamSlot] {
        &self.slots
    }

    /// Shape of one input example.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
}

impl GradientOracle for NetworkLoss {
    fn num_params(&self) -> usize {
        self.theta.len()
    }

    fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    fn params(&self) -> &[f64] {
        &self.theta
    }

    fn gradients(&self, dtheta: Option<&[f64]>, x: &[f64]) -> LossGradients {
        self.evaluate(dtheta, x, true, true)
    }

    fn param_gradient(&self, x: &[f64]) -> Vec<f64> {
        self.evaluate(None, x, true, false).params
    }

    fn input_gradient(&self, dtheta: Option<&[f64]>, x: &[f64]) -> Vec<f64> {
        self.evaluate(dtheta, x, false, true).input
    }
}

impl NetworkLoss {
    /// Loss and the requested gradients (the others are left empty).
    fn evaluate(
        &self,
        dtheta: Option<&[f64]>,
        x: &[f64],
        need_params: bool,
        need_input: bool,
    ) -> LossGradients {
        assert_eq!(
            x.len(),
            self.input_len(),
            "expected an input of the model's size"
        );
        let rebuilt;
        let model = if dtheta.is_some() || !need_params {
            let values: Vec<f64> = match dtheta {
                Some(d) => {
                    assert_eq!(d.len(), self.theta.len(), "expected a full parameter shift");
                    self.theta.iter().zip(d).map(|(a, b)| a + b).collect()
                }
                None => self.theta.clone(),
            };
            rebuilt = self.model.clone().map(&mut FromHost {
                device: &self.device,
                values: &values,
                offset: 0,
                require_grad: need_params,
            });
            &rebuilt
        } else {
            &self.model
        };
        let mut shape = vec![1];
        shape.extend(&self.input_shape);
        let xt = Tensor::<4>::from_data(
            TensorData::new(x.to_vec(), shape),
            (&self.device, DType::F64),
        );
        let xt = if need_input { xt.require_grad() } else { xt };
        let logits = model.forward(xt.clone());
        let loss = match &self.loss {
            LossKind::CrossEntropy { label } => {
                let l = *label as usize;
                log_softmax(logits, 1).slice([0..1, l..l + 1]).sum().neg()
            }
            LossKind::Squared { target } => {
                let t = Tensor::<2>::from_data(
                    TensorData::new(target.clone(), [1, target.len()]),
                    (&self.device, DType::F64),
                );
                (logits - t).square().sum().mul_scalar(0.5)
            }
        };
        let value = host(loss.clone())[0];
        if !(need_params || need_input) {
            return LossGradients {
                loss: value,
                params: Vec::new(),
                input: Vec::new(),
            };
        }
        let grads = loss.backward();
        let input = if need_input {
            xt.grad(&grads)
                .map(host)
                .unwrap_or_else(|| vec![0.0; x.len()])
        } else {
            Vec::new()
        };
        let mut collect = CollectGrads {
            grads: &grads,
            out: Vec::with_capacity(self.theta.len()),
        };
        if need_params {
            model.visit(&mut collect);
        }
        LossGradients {
            loss: value,
            params: collect.out,
            input,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leakage::init::uniform_init;
    use crate::model::zoo;

    fn device() -> Device {
        Device::flex().autodiff()
    }

    #[test]
    fn gradients_match_finite_differences_of_the_loss() {
        let dev = device();
        let spec = zoo::spec_for("lenet", [1, 8, 8], 3).unwrap();
        let model = uniform_init(SplitModel::new(&spec, &dev).unwrap(), 0.5, 1);
        let net = NetworkLoss::new(&model, LossKind::CrossEntropy { label: 2 }, &dev).unwrap();
        let x: Vec<f64> = (0..64).map(|i| ((i * 37) % 11) as f64 / 11.0).collect();
        let g = net.gradients(None, &x);
        assert_eq!(g.params.len(), net.num_params());
        assert_eq!(
            g.params.len(),
            net.slots().iter().map(ParamSlot::len).sum::<usize>()
        );
        // d/dt L(theta + t u, x + t v) at 0 = g.u + grad_x.v, by central differences.
        let u: Vec<f64> = (0..g.params.len())
            .map(|i| ((i % 7) as f64 - 3.0) * 0.01)
            .collect();
        let v: Vec<f64> = (0..64).map(|i| ((i % 5) as f64 - 2.0) * 0.1).collect();
        let h = 1e-5;
        let at = |t: f64| {
            let du: Vec<f64> = u.iter().map(|a| a * t).collect();
            let xv: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + t * b).collect();
            net.gradients(Some(&du), &xv).loss
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        let exact: f64 = g.params.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>()
            + g.input.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>();
        assert!(
            (numeric - exact).abs() < 1e-7 * (1.0 + exact.abs()),
            "{numeric} vs {exact}: the loss must be evaluated in f64"
        );
    }

    #[test]
    fn batch_norm_models_and_bad_labels_are_rejected() {
        let dev = device();
        let cnn = SplitModel::new(&zoo::spec("cnn6").unwrap(), &dev).unwrap();
        let err = NetworkLoss::new(&cnn, LossKind::CrossEntropy { label: 0 }, &dev).unwrap_err();
        assert!(err.to_string().contains("batch-norm"), "{err}");
        let lenet = SplitModel::new(&zoo::spec("lenet").unwrap(), &dev).unwrap();
        let err = NetworkLoss::new(&lenet, LossKind::CrossEntropy { label: 10 }, &dev).unwrap_err();
        assert!(err.to_string().contains("label 10"), "{err}");
        let err =
            NetworkLoss::new(&lenet, LossKind::Squared { target: vec![0.0] }, &dev).unwrap_err();
        assert!(err.to_string().contains("10 outputs"), "{err}");
    }
}
