//! The kernels splitguard adds to its vendored burn-flex (see
//! `vendor/burn-flex/VENDORED.md`) against their definitions: the weight,
//! bias and input gradients of 2D convolution and transposed convolution,
//! batch-norm in training with its gradients, max pooling with its gradient
//! and the elementwise operations split over threads, each compared with a
//! naive computation of the definition over seeded tensors, across strides,
//! paddings (also asymmetric), dilations and groups, and at sizes that take
//! both the one-thread and the parallel paths.
//!
//! The inputs are seeded random numbers: these check arithmetic, not privacy.

use burn::nn::pool::MaxPool2dConfig;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splitguard::train::to_vec;

fn values(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn tensor<const D: usize>(data: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::<1>::from_floats(data, device).reshape(shape)
}

fn assert_close(name: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-4 * scale,
            "{name}[{i}]: got {g}, want {w} (scale {scale})"
        );
    }
}

struct Conv {
    n: usize,
    cin: usize,
    cout: usize,
    hw: [usize; 2],
    k: [usize; 2],
    stride: [usize; 2],
    pad: [(usize, usize); 2],
    dil: [usize; 2],
    groups: usize,
}

/// Output size of a convolution along one axis.
fn conv_out(len: usize, k: usize, s: usize, pad: (usize, usize), d: usize) -> usize {
    (len + pad.0 + pad.1 - d * (k - 1) - 1) / s + 1
}

fn check_conv(c: &Conv, seed: u64) {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [h, w] = c.hw;
    let [kh, kw] = c.k;
    let cg = c.cin / c.groups;
    let og = c.cout / c.groups;
    let (ho, wo) = (
        conv_out(h, kh, c.stride[0], c.pad[0], c.dil[0]),
        conv_out(w, kw, c.stride[1], c.pad[1], c.dil[1]),
    );
    let xs = values(c.n * c.cin * h * w, &mut rng);
    let ws = values(c.cout * cg * kh * kw, &mut rng);
    let bs = values(c.cout, &mut rng);
    let rs = values(c.n * c.cout * ho * wo, &mut rng);
    let x = tensor(&xs, [c.n, c.cin, h, w], &device).require_grad();
    let wt = tensor(&ws, [c.cout, cg, kh, kw], &device).require_grad();
    let b = tensor(&bs, [c.cout], &device).require_grad();
    let r = tensor(&rs, [c.n, c.cout, ho, wo], &device);
    let opts = ConvOptions::new_with_padding(c.stride, c.pad, c.dil, c.groups);
    let y = conv2d(x.clone(), wt.clone(), Some(b.clone()), opts);
    assert_eq!(y.dims(), [c.n, c.cout, ho, wo]);
    let grads = (y.clone() * r).sum().backward();

    // Naive: y, dL/dw, dL/dx, dL/db with L = sum(y * r).
    let mut y_ref = vec![0.0f64; c.n * c.cout * ho * wo];
    let mut dw = vec![0.0f64; ws.len()];
    let mut dx = vec![0.0f64; xs.len()];
    let mut db = vec![0.0f64; c.cout];
    for n in 0..c.n {
        for co in 0..c.cout {
            let g = co / og;
            for oh in 0..ho {
                for ow in 0..wo {
                    let oi = ((n * c.cout + co) * ho + oh) * wo + ow;
                    let rv = rs[oi] as f64;
                    let mut acc = bs[co] as f64;
                    db[co] += rv;
                    for ci in 0..cg {
                        for i in 0..kh {
                            for j in 0..kw {
                                let ih = (oh * c.stride[0] + i * c.dil[0]) as isize
                                    - c.pad[0].0 as isize;
                                let iw = (ow * c.stride[1] + j * c.dil[1]) as isize
                                    - c.pad[1].0 as isize;
                                if ih < 0 || iw < 0 || ih >= h as isize || iw >= w as isize {
                                    continue;
                                }
                                let xi =
                                    ((n * c.cin + g * cg + ci) * h + ih as usize) * w + iw as usize;
                                let wi = ((co * cg + ci) * kh + i) * kw + j;
                                acc += xs[xi] as f64 * ws[wi] as f64;
                                dw[wi] += rv * xs[xi] as f64;
                                dx[xi] += rv * ws[wi] as f64;
                            }
                        }
                    }
                    y_ref[oi] = acc;
                }
            }
        }
    }
    assert_close("conv y", &to_vec(y), &y_ref);
    assert_close("conv dw", &to_vec(wt.grad(&grads).expect("dw")), &dw);
    assert_close("conv db", &to_vec(b.grad(&grads).expect("db")), &db);
    assert_close("conv dx", &to_vec(x.grad(&grads).expect("dx")), &dx);
}

#[test]
fn conv2d_gradients_match_their_definition() {
    let base = Conv {
        n: 3,
        cin: 4,
        cout: 6,
        hw: [7, 6],
        k: [3, 3],
        stride: [1, 1],
        pad: [(1, 1), (1, 1)],
        dil: [1, 1],
        groups: 1,
    };
    check_conv(&base, 1);
    // Large enough (64K values) for the parallel paths: the input layout
    // copy, the per-image input gradient and the bias gradient's channels.
    check_conv(
        &Conv {
            n: 64,
            cin: 8,
            cout: 8,
            hw: [12, 12],
            ..base
        },
        7,
    );
    // More output positions than one 512-wide im2col tile (529, and 513:
    // a last tile one position wide), so tiles write side by side into the
    // output rows; and with two groups.
    for (hw, groups, seed) in [([23, 23], 1, 8), ([27, 19], 1, 9), ([23, 23], 2, 10)] {
        check_conv(
            &Conv {
                n: 2,
                cin: 6,
                cout: 8,
                hw,
                groups,
                ..base
            },
            seed,
        );
    }
    check_conv(
        &Conv {
            stride: [2, 1],
            k: [3, 2],
            ..base
        },
        2,
    );
    check_conv(
        &Conv {
            pad: [(0, 0), (2, 2)],
            dil: [2, 1],
            n: 2,
            cin: 4,
            cout: 6,
            hw: [7, 6],
            k: [3, 3],
            stride: [1, 1],
            groups: 1,
        },
        3,
    );
    // Same width in and out (a shifted copy in the weight gradient's
    // im2col) with a dilated width, different heights, and a batch large
    // enough for the parallel paths.
    check_conv(
        &Conv {
            pad: [(0, 0), (2, 2)],
            dil: [1, 2],
            n: 40,
            cin: 8,
            cout: 8,
            hw: [12, 12],
            k: [3, 3],
            stride: [1, 1],
            groups: 1,
        },
        11,
    );
    check_conv(
        &Conv {
            groups: 2,
            n: 2,
            cin: 4,
            cout: 6,
            hw: [7, 6],
            k: [3, 3],
            stride: [2, 2],
            pad: [(1, 1), (1, 1)],
            dil: [1, 1],
        },
        4,
    );
    check_conv(
        &Conv {
            pad: [(0, 1), (1, 0)],
            n: 2,
            cin: 4,
            cout: 6,
            hw: [7, 6],
            k: [3, 3],
            stride: [1, 1],
            dil: [1, 1],
            groups: 1,
        },
        5,
    );
    // More images than one partial-sum group, a single output channel.
    check_conv(
        &Conv {
            n: 19,
            cout: 1,
            cin: 3,
            hw: [5, 5],
            k: [3, 3],
            stride: [1, 1],
            pad: [(1, 1), (1, 1)],
            dil: [1, 1],
            groups: 1,
        },
        6,
    );
    // Strided weight gradients read the input's stride phases: odd sizes
    // give phases of unequal widths (4 and 3 columns) with a dilated
    // kernel; a stride wider than the input leaves a phase empty.
    check_conv(
        &Conv {
            n: 3,
            cout: 4,
            cin: 3,
            hw: [9, 7],
            k: [3, 3],
            stride: [2, 2],
            pad: [(2, 2), (2, 2)],
            dil: [2, 2],
            groups: 1,
        },
        12,
    );
    check_conv(
        &Conv {
            n: 2,
            cout: 3,
            cin: 2,
            hw: [2, 5],
            k: [3, 3],
            stride: [3, 3],
            pad: [(1, 1), (1, 1)],
            dil: [1, 1],
            groups: 1,
        },
        13,
    );
    // Few output channels at stride 1 (the direct path), wide and
    // asymmetric padding.
    check_conv(
        &Conv {
            n: 3,
            cout: 2,
            cin: 5,
            hw: [6, 7],
            k: [5, 3],
            stride: [1, 1],
            pad: [(2, 2), (1, 1)],
            dil: [1, 1],
            groups: 1,
        },
        7,
    );
    check_conv(
        &Conv {
            n: 2,
            cout: 1,
            cin: 4,
            hw: [6, 5],
            k: [3, 3],
            stride: [1, 1],
            pad: [(0, 2), (1, 0)],
            dil: [1, 1],
            groups: 1,
        },
        8,
    );
}

/// Convolutions with small outputs (at most 64 positions) multiply several
/// images' columns in one GEMM, and every value must still be the sum one
/// image's GEMM forms: a chain of fused multiply-adds over the depth (kernel
/// row, kernel column, input channel), in blocks of 512, each block added
/// to the one before, then the bias. Checked bit for bit against that chain
/// for depths of one block (288), two blocks (576) and a last block of one
/// value (513, which stays one image per GEMM), with batches that leave a
/// last task short. Skipped where the CPU has no fused multiply-add (gemm
/// then multiplies and adds apart).
#[test]
fn small_convolutions_sum_every_value_in_the_per_image_order() {
    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("fma") {
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    return;
    let device = Device::flex();
    let (h, w) = (7, 7);
    for (cin, cout, n, seed) in [(32, 64, 11, 21), (64, 16, 9, 22), (57, 8, 3, 23)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let xs = values(n * cin * h * w, &mut rng);
        let ws = values(cout * cin * 9, &mut rng);
        let bs = values(cout, &mut rng);
        let y = conv2d(
            tensor(&xs, [n, cin, h, w], &device),
            tensor(&ws, [cout, cin, 3, 3], &device),
            Some(tensor(&bs, [cout], &device)),
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
        let got = to_vec(y);
        let depth = cin * 9;
        for img in 0..n {
            for o in 0..cout {
                for oh in 0..h {
                    for ow in 0..w {
                        let mut total = 0.0f32;
                        for block in (0..depth).step_by(512) {
                            let mut acc = 0.0f32;
                            for k in block..(block + 512).min(depth) {
                                let (tap, ci) = (k / cin, k % cin);
                                let (i, j) = (tap / 3, tap % 3);
                                let (ih, iw) = ((oh + i) as isize - 1, (ow + j) as isize - 1);
                                let inside =
                                    (0..h as isize).contains(&ih) && (0..w as isize).contains(&iw);
                                let xv = if inside {
                                    xs[((img * cin + ci) * h + ih as usize) * w + iw as usize]
                                } else {
                                    0.0
                                };
                                acc = ws[(o * cin + ci) * 9 + tap].mul_add(xv, acc);
                            }
                            total = if block == 0 { acc } else { total + acc };
                        }
                        let want = total + bs[o];
                        let at = ((img * cout + o) * h + oh) * w + ow;
                        assert_eq!(
                            got[at].to_bits(),
                            want.to_bits(),
                            "depth {depth}, image {img}, channel {o}, ({oh}, {ow}): {} vs {want}",
                            got[at]
                        );
                    }
                }
            }
        }
    }
}

/// Output channels that the groups do not divide (burn accepts them): the
/// GEMMs cover whole groups only, and the rest must stay bias, as flex
/// computed them, not uninitialised memory.
#[test]
fn conv2d_output_channels_past_the_last_group_are_bias() {
    let device = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let xs = values(2 * 4 * 9 * 9, &mut rng);
    let ws = values(5 * 2 * 3 * 3, &mut rng);
    let full = values(5 * 4 * 3 * 3, &mut rng);
    let x = tensor(&xs, [2, 4, 9, 9], &device);
    let w = tensor(&ws, [5, 2, 3, 3], &device);
    let b = tensor(&[0.5, -1.0, 2.0, 0.25, -3.5], [5], &device);
    for round in 0..4 {
        // An output of the same size with other values, freed just before,
        // so that unwritten memory would not happen to hold the bias.
        let other = conv2d(
            x.clone(),
            tensor(&full, [5, 4, 3, 3], &device),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
        drop(to_vec(other));
        let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 2);
        let y = to_vec(conv2d(x.clone(), w.clone(), Some(b.clone()), opts));
        assert_eq!(y.len(), 2 * 5 * 81);
        for n in 0..2 {
            let last = &y[(n * 5 + 4) * 81..(n * 5 + 5) * 81];
            assert!(
                last.iter().all(|&v| v == -3.5),
                "round {round}, image {n}: {last:?}"
            );
        }
    }
}

struct Deconv {
    n: usize,
    cin: usize,
    cout: usize,
    hw: [usize; 2],
    k: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    pad_out: [usize; 2],
    dil: [usize; 2],
    groups: usize,
}

fn check_deconv(c: &Deconv, seed: u64) {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [h, w] = c.hw;
    let [kh, kw] = c.k;
    let cg = c.cin / c.groups;
    let og = c.cout / c.groups;
    let out = |len: usize, a: usize| {
        (len - 1) * c.stride[a] + c.dil[a] * (c.k[a] - 1) + c.pad_out[a] + 1 - 2 * c.pad[a]
    };
    let (ho, wo) = (out(h, 0), out(w, 1));
    let xs = values(c.n * c.cin * h * w, &mut rng);
    let ws = values(c.cin * og * kh * kw, &mut rng);
    let bs = values(c.cout, &mut rng);
    let rs = values(c.n * c.cout * ho * wo, &mut rng);
    let x = tensor(&xs, [c.n, c.cin, h, w], &device).require_grad();
    let wt = tensor(&ws, [c.cin, og, kh, kw], &device).require_grad();
    let b = tensor(&bs, [c.cout], &device).require_grad();
    let r = tensor(&rs, [c.n, c.cout, ho, wo], &device);
    let opts = ConvTransposeOptions::new(c.stride, c.pad, c.pad_out, c.dil, c.groups);
    let y = conv_transpose2d(x.clone(), wt.clone(), Some(b.clone()), opts);
    assert_eq!(y.dims(), [c.n, c.cout, ho, wo]);
    let grads = (y.clone() * r).sum().backward();

    let mut y_ref = vec![0.0f64; c.n * c.cout * ho * wo];
    for n in 0..c.n {
        for co in 0..c.cout {
            for p in 0..ho * wo {
                y_ref[(n * c.cout + co) * ho * wo + p] = bs[co] as f64;
            }
        }
    }
    let mut dw = vec![0.0f64; ws.len()];
    let mut dx = vec![0.0f64; xs.len()];
    let mut db = vec![0.0f64; c.cout];
    for (i, rv) in rs.iter().enumerate() {
        db[(i / (ho * wo)) % c.cout] += *rv as f64;
    }
    for n in 0..c.n {
        for ci in 0..c.cin {
            let g = ci / cg;
            for ih in 0..h {
                for iw in 0..w {
                    let xi = ((n * c.cin + ci) * h + ih) * w + iw;
                    for col in 0..og {
                        let co = g * og + col;
                        for i in 0..kh {
                            for j in 0..kw {
                                let oh =
                                    (ih * c.stride[0] + i * c.dil[0]) as isize - c.pad[0] as isize;
                                let ow =
                                    (iw * c.stride[1] + j * c.dil[1]) as isize - c.pad[1] as isize;
                                if oh < 0 || ow < 0 || oh >= ho as isize || ow >= wo as isize {
                                    continue;
                                }
                                let oi = ((n * c.cout + co) * ho + oh as usize) * wo + ow as usize;
                                let wi = ((ci * og + col) * kh + i) * kw + j;
                                y_ref[oi] += xs[xi] as f64 * ws[wi] as f64;
                                dw[wi] += rs[oi] as f64 * xs[xi] as f64;
                                dx[xi] += rs[oi] as f64 * ws[wi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    assert_close("deconv y", &to_vec(y), &y_ref);
    assert_close("deconv dw", &to_vec(wt.grad(&grads).expect("dw")), &dw);
    assert_close("deconv db", &to_vec(b.grad(&grads).expect("db")), &db);
    assert_close("deconv dx", &to_vec(x.grad(&grads).expect("dx")), &dx);
}

#[test]
fn conv_transpose2d_gradients_match_their_definition() {
    // The decoder's upsampling stage: kernel 4, stride 2, padding 1.
    let base = Deconv {
        n: 3,
        cin: 6,
        cout: 4,
        hw: [5, 4],
        k: [4, 4],
        stride: [2, 2],
        pad: [1, 1],
        pad_out: [0, 0],
        dil: [1, 1],
        groups: 1,
    };
    check_deconv(&base, 11);
    // Few input channels at stride 1 (the direct path).
    check_deconv(
        &Deconv {
            n: 3,
            cin: 2,
            cout: 5,
            hw: [6, 5],
            k: [3, 4],
            stride: [1, 1],
            pad: [1, 2],
            pad_out: [0, 0],
            dil: [1, 1],
            groups: 1,
        },
        15,
    );
    check_deconv(
        &Deconv {
            n: 2,
            cin: 1,
            cout: 3,
            hw: [4, 4],
            k: [3, 3],
            stride: [1, 1],
            pad: [0, 0],
            pad_out: [0, 0],
            dil: [1, 1],
            groups: 1,
        },
        16,
    );
    check_deconv(
        &Deconv {
            k: [3, 2],
            stride: [1, 3],
            pad: [0, 0],
            pad_out: [0, 2],
            ..base
        },
        12,
    );
    check_deconv(
        &Deconv {
            dil: [2, 1],
            pad: [2, 0],
            k: [3, 3],
            stride: [2, 2],
            n: 3,
            cin: 6,
            cout: 4,
            hw: [5, 4],
            pad_out: [1, 1],
            groups: 1,
        },
        13,
    );
    check_deconv(
        &Deconv {
            groups: 2,
            n: 10,
            cin: 6,
            cout: 4,
            hw: [5, 4],
            k: [4, 4],
            stride: [2, 2],
            pad: [1, 1],
            pad_out: [0, 0],
            dil: [1, 1],
        },
        14,
    );
    // The decoder's stage at a batch that runs images in parallel (over 32K
    // outputs), and one image whose columns pass 8 MB, so the product is
    // computed and added back in two tiles of input positions.
    check_deconv(
        &Deconv {
            n: 24,
            cin: 16,
            cout: 8,
            hw: [7, 7],
            ..base
        },
        17,
    );
    check_deconv(
        &Deconv {
            n: 1,
            cin: 2,
            cout: 4,
            hw: [200, 180],
            ..base
        },
        18,
    );
}

#[test]
fn batch_norm_training_matches_its_definition() {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for shape in [[5usize, 3, 4, 6], [7, 4, 1, 1], [2, 2, 9, 1]] {
        let [n, c, h, w] = shape;
        let len = n * c * h * w;
        let xs: Vec<f32> = values(len, &mut rng)
            .iter()
            .map(|v| 3.0 * v + 1.5)
            .collect();
        let rs = values(len, &mut rng);
        let gamma = values(c, &mut rng);
        let beta = values(c, &mut rng);
        let eps = 1e-5;
        let x = tensor(&xs, shape, &device).require_grad();
        let gt = tensor(&gamma, [c], &device).require_grad();
        let bt = tensor(&beta, [c], &device).require_grad();
        let out = burn::tensor::module::batch_norm_train(x.clone(), gt.clone(), bt.clone(), eps);
        let y = out.output;
        let grads = (y.clone() * tensor(&rs, shape, &device)).sum().backward();

        let m = (n * h * w) as f64;
        let idx = |ni: usize, ci: usize, p: usize| (ni * c + ci) * h * w + p;
        let (mut y_ref, mut dx) = (vec![0.0f64; len], vec![0.0f64; len]);
        let (mut dg, mut dbeta, mut means, mut vars) =
            (vec![0.0; c], vec![0.0; c], vec![0.0; c], vec![0.0; c]);
        for ci in 0..c {
            let all: Vec<usize> = (0..n)
                .flat_map(|ni| (0..h * w).map(move |p| idx(ni, ci, p)))
                .collect();
            let mean = all.iter().map(|&i| xs[i] as f64).sum::<f64>() / m;
            let var = all
                .iter()
                .map(|&i| (xs[i] as f64 - mean).powi(2))
                .sum::<f64>()
                / m;
            let inv = 1.0 / (var + eps).sqrt();
            let xhat = |i: usize| (xs[i] as f64 - mean) * inv;
            let sum_g: f64 = all.iter().map(|&i| rs[i] as f64).sum();
            let sum_gx: f64 = all.iter().map(|&i| rs[i] as f64 * xhat(i)).sum();
            for &i in &all {
                y_ref[i] = xhat(i) * gamma[ci] as f64 + beta[ci] as f64;
                dx[i] = gamma[ci] as f64 * inv * (rs[i] as f64 - sum_g / m - xhat(i) * sum_gx / m);
            }
            (dg[ci], dbeta[ci], means[ci], vars[ci]) = (sum_gx, sum_g, mean, var);
        }
        assert_close("bn mean", &to_vec(out.mean), &means);
        assert_close("bn variance", &to_vec(out.variance), &vars);
        assert_close("bn y", &to_vec(y), &y_ref);
        assert_close("bn dx", &to_vec(x.grad(&grads).expect("dx")), &dx);
        assert_close("bn dgamma", &to_vec(gt.grad(&grads).expect("dgamma")), &dg);
        assert_close("bn dbeta", &to_vec(bt.grad(&grads).expect("dbeta")), &dbeta);
    }
}

/// `max_pool2d` (no padding, dilation 1) by its definition: each window's
/// first maximum in row-major order, a NaN winning (and the last NaN's
/// position kept), and the gradient routed to that position.
fn check_max_pool(shape: [usize; 4], k: usize, stride: usize, seed: u64) {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [n, c, h, w] = shape;
    // Coarse values, so windows hold ties; a few NaNs.
    let mut xs: Vec<f32> = (0..n * c * h * w)
        .map(|_| rng.random_range(0..5) as f32)
        .collect();
    // Pairs of neighbours, so some windows hold two NaNs (the last one's
    // position is kept).
    for i in (0..xs.len() - 1).step_by(97) {
        xs[i] = f32::NAN;
        xs[i + 1] = f32::NAN;
    }
    let (ho, wo) = ((h - k) / stride + 1, (w - k) / stride + 1);
    let gs = values(n * c * ho * wo, &mut rng);
    let x = tensor(&xs, shape, &device).require_grad();
    let pool = MaxPool2dConfig::new([k, k])
        .with_strides([stride, stride])
        .init();
    let y = pool.forward(x.clone());
    let grads = (y.clone() * tensor(&gs, [n, c, ho, wo], &device))
        .sum()
        .backward();
    let (mut want, mut dx) = (Vec::new(), vec![0.0f64; xs.len()]);
    for plane in 0..n * c {
        for oh in 0..ho {
            for ow in 0..wo {
                let mut best: Option<(f32, usize)> = None;
                for i in 0..k {
                    for j in 0..k {
                        let at = plane * h * w + (oh * stride + i) * w + ow * stride + j;
                        let v = xs[at];
                        if best.is_none_or(|(m, _)| v > m || v.is_nan()) {
                            best = Some((v, at));
                        }
                    }
                }
                let (v, at) = best.expect("a window");
                want.push(v);
                dx[at] += gs[(plane * ho + oh) * wo + ow] as f64;
            }
        }
    }
    let got = to_vec(y);
    assert_eq!(got.len(), want.len());
    for (i, (g, v)) in got.iter().zip(&want).enumerate() {
        assert!(
            g.to_bits() == v.to_bits() || (g.is_nan() && v.is_nan()),
            "max pool {shape:?} k{k} s{stride} [{i}]: got {g}, want {v}"
        );
    }
    // The gradient goes to each window's chosen position (NaN or not).
    let dx_got = to_vec(x.grad(&grads).expect("dx"));
    assert_close(
        &format!("max pool dx {shape:?} k{k} s{stride}"),
        &dx_got,
        &dx,
    );
}

#[test]
fn max_pool2d_matches_its_definition() {
    // Windows that tile the input (the fast path), also leaving a ragged
    // edge unread, and overlapping windows (the general path).
    check_max_pool([2, 3, 8, 8], 2, 2, 31);
    check_max_pool([2, 3, 7, 7], 2, 2, 32);
    check_max_pool([2, 3, 9, 8], 3, 3, 33);
    check_max_pool([2, 3, 7, 7], 3, 2, 34);
    // 71,680 input values: the gradient's planes in parallel.
    check_max_pool([70, 16, 8, 8], 2, 2, 35);
}

#[test]
fn elementwise_operations_give_the_same_bits_on_every_path() {
    let device = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    // Below and above the 64K values from which the loops run in parallel,
    // including a length that does not fill the last chunk.
    for len in [1000usize, 70_002] {
        let a = values(len, &mut rng);
        let b = values(len, &mut rng);
        let ta = || tensor(&a, [len], &device);
        let tb = || tensor(&b, [len], &device);
        let same = |name: &str, got: Tensor<1>, want: &dyn Fn(f32, f32) -> f32| {
            let got = to_vec(got);
            assert_eq!(got.len(), len, "{name}");
            for (i, g) in got.iter().enumerate() {
                let w = want(a[i], b[i]);
                assert_eq!(g.to_bits(), w.to_bits(), "{name} ({len})[{i}]: {g} vs {w}");
            }
        };
        // Unique operands are written in place (the left one, or the right
        // one when the left is shared); when both are shared, or the operand
        // is a view at an offset, the result is a new tensor.
        same("add", ta() + tb(), &|x, y| x + y);
        let shared = ta();
        same("sub (left shared)", shared.clone() - tb(), &|x, y| x - y);
        drop(shared);
        same("mul", ta() * tb(), &|x, y| x * y);
        let (x, y) = (ta(), tb());
        same("div (both shared)", x.clone() / y.clone(), &|x, y| x / y);
        same(
            "max_pair (both shared)",
            x.clone().max_pair(y.clone()),
            &|x, y| x.max(y),
        );
        drop((x, y));
        same("mul_scalar", ta().mul_scalar(0.3), &|x, _| x * 0.3);
        let shared = ta();
        same(
            "add_scalar (shared)",
            shared.clone().add_scalar(2.5),
            &|x, _| x + 2.5,
        );
        same("exp (shared)", shared.clone().exp(), &|x, _| x.exp());
        drop(shared);
        same("exp", ta().exp(), &|x, _| x.exp());
        same("relu", relu(ta()), &|x, _| if x > 0.0 { x } else { 0.0 });
        // A view that starts one value in (contiguous, at an offset).
        let got = to_vec(ta().narrow(0, 1, len - 1).mul_scalar(2.0));
        assert_eq!(got.len(), len - 1);
        for (i, g) in got.iter().enumerate() {
            assert_eq!(
                g.to_bits(),
                (a[i + 1] * 2.0).to_bits(),
                "offset view ({len})[{i}]"
            );
        }
    }
}
