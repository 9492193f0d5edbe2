//! Terminal progress: indicatif bars for epochs and attacks, tracing logs
//! for the events a pipeline's log file should keep.

use indicatif::{ProgressBar, ProgressStyle};

use splitguard::attack::{AttackRecord, AuditObserver};
use splitguard::pipeline::RunObserver;
use splitguard::train::{EpochMetrics, TrainObserver};

/// Draws progress bars (hidden automatically when stderr is not a terminal).
#[derive(Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
    loss: f64,
    acc: f64,
    steps: usize,
}

impl Progress {
    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl TrainObserver for Progress {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.finish();
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {epoch}/{epochs}"));
        self.bar = Some(bar);
        (self.loss, self.acc, self.steps) = (0.0, 0.0, 0);
    }

    fn step(&mut self, loss: f64, accuracy: f64) {
        self.steps += 1;
        self.loss += (loss - self.loss) / self.steps as f64;
        self.acc += (accuracy - self.acc) / self.steps as f64;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if self.steps.is_multiple_of(5) {
                bar.set_message(format!(
                    "loss {:.4} acc {:.2}%",
                    self.loss,
                    100.0 * self.acc
                ));
            }
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        self.finish();
        let extra: String = m
            .defenses
            .iter()
            .map(|(k, v)| format!(" {k}={v:.4}"))
            .collect();
        tracing::info!(
            "epoch {}: loss {:.4}, train accuracy {:.2}%, lr {:.1e}, {:.1}s{extra}",
            m.epoch,
            m.loss,
            100.0 * m.train_accuracy,
            m.lr,
            m.seconds
        );
    }

    fn resumed(&mut self, epoch: usize, checkpoint: &std::path::Path) {
        tracing::info!("resumed from {} after epoch {epoch}", checkpoint.display());
    }
}

impl AuditObserver for Progress {
    fn attack_start(&mut self, attack: &str, split: usize) {
        self.finish();
        let bar = ProgressBar::new_spinner();
        bar.set_message(format!("{attack} attack at split {split}"));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        self.bar = Some(bar);
    }

    fn attack_end(&mut self, r: &AttackRecord, seconds: f64) {
        self.finish();
        match (r.mse, r.psnr, r.ssim, r.accuracy) {
            (Some(mse), Some(psnr), Some(ssim), _) => tracing::info!(
                "{} at split {}: MSE {mse:.4}, PSNR {psnr:.2} dB, SSIM {ssim:.3} ({seconds:.1}s)",
                r.attack,
                r.split
            ),
            (_, _, _, Some(acc)) => tracing::info!(
                "{} at split {}: accuracy {acc:.3} vs chance {:.3} ({seconds:.1}s)",
                r.attack,
                r.split,
                r.chance.unwrap_or(f64::NAN)
            ),
            _ => tracing::info!("{} at split {} done ({seconds:.1}s)", r.attack, r.split),
        }
    }
}

impl RunObserver for Progress {
    fn stage(&mut self, name: &str, detail: &str) {
        self.finish();
        tracing::info!("stage {name}: {detail}");
    }
}
