#!/usr/bin/env python3
"""PyTorch twin of splitguard's equal-work benchmarks (benches/equal_work.rs).

Every workload builds the same network as the Rust code (layer order,
padding, bias, batch-norm eps 1e-5 / momentum 0.1, leaky slope 0.2,
bilinear resizing with align_corners=True as burn's `InterpolateOptions::new`
defaults to), float32, on seeded random inputs; these measure speed only.
The optimiser is Adam with burn's `AdamConfig` defaults: betas 0.9/0.999,
epsilon 1e-5 (PyTorch's default is 1e-8), no weight decay. A training step is
forward, loss, backward, optimiser step (gradients zeroed), model in train
mode.

  cnn6_train_step       cnn6 (src/model/zoo.rs), batch 64 of 1x28x28, cross-entropy
                        against one-hot targets (soft_cross_entropy), Adam lr 1e-3
  cnn6_infer_batch      the same net, eval mode, no grad, batch 64
  decoder_step_split1   the audit's decoder (src/attack/decoder.rs) from 16x14x14
                        features: head conv, BN, leaky, 1 transposed-conv stage,
                        out conv, sigmoid; batch 64, MSE, Adam lr 1e-3
  decoder_step_split2   the same from 32x7x7 features (2 transposed-conv stages)
  dci_inverse_step      DCI's inverse of cnn6 block 2 (src/attack/dci/inverse.rs),
                        batch 32, mean L1 against the block's input, on features
                        precomputed by the frozen block; Adam lr 2e-3 (DciConfig)
  attribute_step        the attribute attacker at split 2 (src/attack/attribute.rs):
                        cnn6 blocks 3-6 with a 2-class head, batch 64, cross-entropy
  audit_decoder_split1  the whole `decoder_attack` at split 1 as one timed unit:
                        2000 aux + 2000 test features, 2 epochs, no restarts

Timing: `--warmup` untimed calls, then `--steps` timed ones (time.perf_counter
around each whole step); median (the upper median for an even count, like the
Rust harness), min and max in ms. audit_decoder_split1 uses min(steps, 3)
timed and min(warmup, 1) untimed calls, as the Rust side does.

Usage: bench.py [--threads 2] [--steps 30] [--warmup 5] [--only a,b] [--json F]
"""
import argparse
import json
import os
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-5  # burn-optim AdamConfig default
BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # burn-nn BatchNormConfig defaults (same convention)
LEAKY = 0.2  # decoder and DCI inverse slope
DEPTH = 0  # decoder.rs DecoderConfig::default().depth: refining convs per resolution

WORKLOADS = [
    "cnn6_train_step",
    "cnn6_infer_batch",
    "decoder_step_split1",
    "decoder_step_split2",
    "dci_inverse_step",
    "attribute_step",
    "audit_decoder_split1",
]


# ---------------------------------------------------------------- networks

def conv_block(cin, cout):
    """src/model/block.rs ConvBlock with cnn6's spec: conv 3x3 stride 1 pad 1
    with bias, then ConvOrder::ConvActPoolBn: ReLU, max-pool 2 (stride 2),
    batch-norm."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=True),
        nn.ReLU(),
        nn.MaxPool2d(2, stride=2),
        nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
    )


def linear_block(din, dout, relu_bn):
    """LinearBlock: flattens a map input; linear, activation, optional BN."""
    layers = [nn.Flatten(), nn.Linear(din, dout)]
    if relu_bn:
        layers += [nn.ReLU(), nn.BatchNorm1d(dout, eps=BN_EPS, momentum=BN_MOMENTUM)]
    return nn.Sequential(*layers)


def cnn6_blocks(classes=10):
    """zoo::spec("cnn6"): six blocks, 1x28x28 -> 16x14x14 -> 32x7x7 -> 64x3x3
    -> 128 -> 64 -> classes."""
    return [
        conv_block(1, 16),
        conv_block(16, 32),
        conv_block(32, 64),
        linear_block(64 * 3 * 3, 128, True),
        linear_block(128, 64, True),
        linear_block(64, classes, False),
    ]


class Decoder(nn.Module):
    """src/attack/decoder.rs `Decoder::new(input, target, width, depth)` for
    map features `[C, h, w]` (the case every split of cnn6 up to 3 has): head
    conv 3x3 pad 1 -> BN -> leaky 0.2, `depth` refining convs (3x3 pad 1, BN,
    leaky 0.2), then as many x2 transposed-conv stages (k4 s2 p1, channels
    halved down to 16, BN, leaky 0.2, `depth` refining convs) as fit inside
    the target size, out conv 3x3 pad 1, a bilinear resize only when the size
    is still off, sigmoid. Takes flattened features `[N, C*h*w]`."""

    def __init__(self, input_shape, target, width=64, depth=DEPTH):
        super().__init__()
        c, h, w = input_shape
        tc, th, tw = target
        width = max(width, 8)

        def ups(frm, to):
            n = 0
            while (frm << (n + 1)) <= to:
                n += 1
            return n

        n_up = max(ups(h, th), ups(w, tw))
        self.base = (width, h, w)
        self.target = (tc, th, tw)
        self.head = nn.Conv2d(c, width, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(width, eps=BN_EPS, momentum=BN_MOMENTUM)

        def refine(ch):
            return nn.ModuleList(nn.ModuleDict({
                "conv": nn.Conv2d(ch, ch, 3, padding=1),
                "bn": nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM),
            }) for _ in range(depth))

        self.refine0 = refine(width)
        stages, ch = [], width
        for _ in range(n_up):
            nxt = max(ch // 2, 16)
            stages.append(nn.ModuleDict({
                "deconv": nn.ConvTranspose2d(ch, nxt, 4, stride=2, padding=1),
                "bn": nn.BatchNorm2d(nxt, eps=BN_EPS, momentum=BN_MOMENTUM),
                "refine": refine(nxt),
            }))
            ch = nxt
        self.ups = nn.ModuleList(stages)
        self.out = nn.Conv2d(ch, tc, 3, padding=1)

    def forward(self, z):
        n, d = z.shape
        _, h, w = self.base
        x = self.head(z.reshape(n, d // (h * w), h, w))
        x = self._refine(self.refine0, F.leaky_relu(self.bn0(x), LEAKY))
        for up in self.ups:
            x = F.leaky_relu(up["bn"](up["deconv"](x)), LEAKY)
            x = self._refine(up["refine"], x)
        x = self.out(x)
        _, th, tw = self.target
        if tuple(x.shape[2:]) != (th, tw):
            x = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=True)
        return torch.sigmoid(x)

    @staticmethod
    def _refine(stack, x):
        for r in stack:
            x = F.leaky_relu(r["bn"](r["conv"](x)), LEAKY)
        return x


class ConvInverse(nn.Module):
    """src/attack/dci/inverse.rs `BlockInverse::new(input=[cin,H,W],
    output=[cout,h,w], width)`: bilinear resize to HxW (align_corners=True,
    only when the size differs), skip 1x1 conv cout->cin, c1 3x3 cout->width,
    leaky 0.2, c2 3x3 width->width, leaky 0.2, c3 3x3 width->cin (zero init),
    output skip(z) + c3(y). No batch-norm; convs have bias."""

    def __init__(self, input_shape, output_shape, width=16):
        super().__init__()
        cin, h, w = input_shape
        cout = output_shape[0]
        self.size = (h, w)
        self.skip = nn.Conv2d(cout, cin, 1)
        self.c1 = nn.Conv2d(cout, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, width, 3, padding=1)
        self.c3 = nn.Conv2d(width, cin, 3, padding=1)
        nn.init.zeros_(self.c3.weight)
        nn.init.zeros_(self.c3.bias)

    def forward(self, z):
        if tuple(z.shape[2:]) != self.size:
            z = F.interpolate(z, size=self.size, mode="bilinear", align_corners=True)
        y = F.leaky_relu(self.c1(z), LEAKY)
        y = F.leaky_relu(self.c2(y), LEAKY)
        return self.skip(z) + self.c3(y)


class FromFlat(nn.Module):
    """Features::from_flat: `[N, D]` -> `[N, C, H, W]`."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, z):
        return z.reshape(z.shape[0], *self.shape)


def n_params(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def adam(module, lr, impl):
    kw = {}
    if impl == "foreach":
        kw["foreach"] = True
    elif impl == "fused":
        kw["fused"] = True
    return torch.optim.Adam(module.parameters(), lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS,
                            weight_decay=0.0, **kw)


def soft_cross_entropy(logits, targets):
    """src/train/trainer.rs: -(log_softmax(logits) * targets).sum(1).mean()."""
    return F.cross_entropy(logits, targets)  # probability targets: the same formula


def one_hot(labels, classes):
    return F.one_hot(labels, classes).to(torch.float32)


def train_step_fn(model, opt, loss_of):
    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model)
        loss.backward()
        opt.step()
    return step


# ---------------------------------------------------------------- the audit

def standardizer(features):
    """decoder.rs Standardizer::fit: per-column mean and population variance
    in f64, inv_std = 1 / (sqrt(var) + 1e-6), applied in f32."""
    f = features.to(torch.float64)
    mean = f.mean(0)
    var = (f.pow(2).mean(0) - mean.pow(2)).clamp_min(0.0)
    return mean.to(torch.float32), (1.0 / (var.sqrt() + 1e-6)).to(torch.float32)


def across_image_variance(images):
    f = images.to(torch.float64)
    mean = f.mean(0)
    return (f.pow(2).mean(0) - mean.pow(2)).clamp_min(0.0).mean().item()


def decode_all(dec, z):
    """decode_all: eval mode, chunks of 256."""
    dec.eval()
    with torch.no_grad():
        out = torch.cat([dec(c) for c in z.split(256)])
    dec.train()
    return out


def decoder_attack(aux_features, feature_shape, aux_images, image_shape, test_features,
                   epochs=40, batch_size=32, lr=1e-3, restarts=2, width=64, seed=0,
                   adam_impl="default"):
    """decoder.rs `decoder_attack`: standardise with aux statistics, hold out
    a tenth (1..500) of aux for validation, train with shuffled batches
    (batches of one skipped), validate, restart on collapse, decode the test
    features. Images are flat `[N, C*H*W]` rows."""
    n = aux_features.shape[0]
    mean, inv_std = standardizer(aux_features)
    z_all = (aux_features - mean) * inv_std
    z_test = (test_features - mean) * inv_std
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed ^ 0xDEC0DE))
    n_val = min(max(n // 10, min(1, n)), 500)
    val_idx, train_idx = order[:n_val], order[n_val:]
    z_val, x_val = z_all[val_idx], aux_images[val_idx]
    data_var = across_image_variance(aux_images)
    c, h, w = image_shape

    best, attempts, collapsed = None, 0, 0
    for attempt in range(restarts + 1):
        attempts += 1
        attempt_seed = seed + attempt * 7919
        torch.manual_seed(attempt_seed)
        dec = Decoder(feature_shape, image_shape, width)
        dec.train()
        opt = adam(dec, lr, adam_impl)
        rng = torch.Generator().manual_seed(attempt_seed)
        idx = train_idx
        for _ in range(epochs):
            idx = idx[torch.randperm(idx.numel(), generator=rng)]
            for b in idx.split(max(batch_size, 2)):
                if b.numel() <= 1:
                    continue
                z = z_all[b]
                x = aux_images[b].reshape(b.numel(), c, h, w)
                opt.zero_grad(set_to_none=True)
                loss = F.mse_loss(dec(z), x)
                loss.backward()
                opt.step()
        val_rec = decode_all(dec, z_val).reshape(n_val, -1)
        val_mse = (val_rec.double() - x_val.double()).pow(2).mean().item()
        is_collapsed = across_image_variance(val_rec) < 0.01 * data_var
        collapsed += int(is_collapsed)
        if best is None or val_mse < best[0]:
            best = (val_mse, dec)
        if not is_collapsed:
            break
    val_mse, dec = best
    return {
        "reconstructions": decode_all(dec, z_test),
        "validation_mse": val_mse,
        "attempts": attempts,
        "collapsed": collapsed,
    }


# ---------------------------------------------------------------- timing

def time_steps(step, steps, warmup):
    for _ in range(warmup):
        step()
    ms = []
    for _ in range(max(steps, 1)):
        t0 = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    return {"median_ms": ms[len(ms) // 2], "min_ms": ms[0], "max_ms": ms[-1], "steps": len(ms)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--only", default=None, help="comma list of workloads: " + ",".join(WORKLOADS))
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--adam-impl", choices=["default", "foreach", "fused"], default="default",
                    help="torch.optim.Adam implementation (default: PyTorch's choice for CPU)")
    a = ap.parse_args(argv)

    only = None
    if a.only:
        only = [s for s in a.only.split(",") if s]
        unknown = [s for s in only if s not in WORKLOADS]
        if unknown:
            ap.error(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")

    def wanted(name):
        return only is None or name in only

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    steps, warmup = a.steps, a.warmup
    res = {}

    def record(name, timing, params):
        timing["params"] = params
        res[name] = timing
        print(f"{name:<22} median {timing['median_ms']:>9.2f} ms  min {timing['min_ms']:>9.2f}  "
              f"max {timing['max_ms']:>9.2f}  ({timing['steps']} steps, {params} params)",
              flush=True)

    # cnn6: the trainer's step and a batch of inference.
    x = torch.rand(64, 1, 28, 28)
    y = one_hot(torch.arange(64) % 10, 10)
    cnn6 = nn.Sequential(*cnn6_blocks(10))
    cnn6_params = n_params(cnn6)
    if wanted("cnn6_train_step"):
        cnn6.train()
        opt = adam(cnn6, 1e-3, a.adam_impl)
        step = train_step_fn(cnn6, opt, lambda m: soft_cross_entropy(m(x), y))
        record("cnn6_train_step", time_steps(step, steps, warmup), cnn6_params)
    if wanted("cnn6_infer_batch"):
        cnn6.eval()

        def infer():
            with torch.no_grad():
                cnn6(x)
        record("cnn6_infer_batch", time_steps(infer, steps, warmup), cnn6_params)
        cnn6.train()

    # The decoder attacker's step at splits 1 and 2.
    for name, shape in [("decoder_step_split1", (16, 14, 14)),
                        ("decoder_step_split2", (32, 7, 7))]:
        if not wanted(name):
            continue
        c, h, w = shape
        z = torch.randn(64, c * h * w)
        target = torch.rand(64, 1, 28, 28)
        dec = Decoder(shape, (1, 28, 28), 64)
        dec.train()
        opt = adam(dec, 1e-3, a.adam_impl)
        step = train_step_fn(dec, opt, lambda m, z=z, t=target: F.mse_loss(m(z), t))
        record(name, time_steps(step, steps, warmup), n_params(dec))

    # DCI: the inverse of cnn6 block 2 on features of the frozen block.
    if wanted("dci_inverse_step"):
        block2 = cnn6[1]
        block2.eval()
        u = torch.rand(32, 16, 14, 14)
        with torch.no_grad():
            z = block2(u)  # [32, 32, 7, 7], the feature table
        block2.train()
        g = ConvInverse((16, 14, 14), (32, 7, 7), 16)
        g.train()
        opt = adam(g, 2e-3, a.adam_impl)  # DciConfig's default lr

        def dci_step():
            opt.zero_grad(set_to_none=True)
            loss = F.l1_loss(g(z), u)  # inverse.rs mean_l1
            loss.backward()
            opt.step()
        record("dci_inverse_step", time_steps(dci_step, steps, warmup), n_params(g))

    # Attribute attacker: cnn6's server part at split 2, 2 classes.
    if wanted("attribute_step"):
        server = cnn6_blocks(2)[2:]
        attacker = nn.Sequential(FromFlat((32, 7, 7)), *server)
        attacker.train()
        z = torch.randn(64, 32 * 7 * 7)
        t2 = one_hot(torch.arange(64) % 2, 2)
        opt = adam(attacker, 1e-3, a.adam_impl)
        step = train_step_fn(attacker, opt, lambda m: soft_cross_entropy(m(z), t2))
        record("attribute_step", time_steps(step, steps, warmup), n_params(attacker))

    # The whole decoder attack at split 1.
    if wanted("audit_decoder_split1"):
        n = 2000
        aux_f = torch.randn(n, 16 * 14 * 14)
        aux_x = torch.rand(n, 28 * 28)
        test_f = torch.randn(n, 16 * 14 * 14)
        params = n_params(Decoder((16, 14, 14), (1, 28, 28), 64))

        def audit():
            decoder_attack(aux_f, (16, 14, 14), aux_x, (1, 28, 28), test_f,
                           epochs=2, batch_size=32, lr=1e-3, restarts=0, width=64, seed=7,
                           adam_impl=a.adam_impl)
        record("audit_decoder_split1", time_steps(audit, min(steps, 3), min(warmup, 1)), params)

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    meta = {"python": platform.python_version(), "cpu": cpu, "nproc": os.cpu_count(),
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(), "adam_impl": a.adam_impl,
            "adam_eps": ADAM_EPS}
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"adam {a.adam_impl}, {cpu or 'unknown cpu'}")
    if a.json:
        doc = {"framework": "pytorch", "threads": torch.get_num_threads(),
               "torch": torch.__version__, "workloads": res, "meta": meta}
        d = os.path.dirname(a.json)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
