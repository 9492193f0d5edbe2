//! Data-free divide-and-conquer inversion, DCI (seed 000, DESIGN 9.3), as
//! an audit attack: the synthetic inputs are made and each block inverse
//! trained once, at the first split attacked, then serve every split.

use super::{OneRecord, SplitInputs, inversion_error, reconstruction_record};
use crate::attack::AttackRecord;
use crate::attack::dci::{DciAttacker, DciConfig};
use crate::formats::grid::save_image_grid;
use crate::metrics::spearman;

/// DCI, with its attacker once built.
pub struct Dci {
    cfg: DciConfig,
    attacker: Option<DciAttacker>,
}

impl Dci {
    /// Nothing built yet.
    pub fn new(cfg: DciConfig) -> Self {
        Self {
            cfg,
            attacker: None,
        }
    }
}

impl OneRecord for Dci {
    fn record(&mut self, at: &SplitInputs) -> Result<AttackRecord, crate::Error> {
        let (dc, label, k) = (&self.cfg, at.label, at.split);
        let mut synthesis = serde_json::Value::Null;
        if self.attacker.is_none() {
            let a = DciAttacker::new(at.model, dc, at.seed, at.device)
                .map_err(|e| inversion_error(label, k, e))?;
            let s = a.synthesised();
            let file = format!("{label}_synthesised.png");
            let shown = (2 * at.grid_images).min(s.len());
            let il = s.shape.iter().product::<usize>();
            save_image_grid(
                &at.scoring.out_dir.join(&file),
                &[&s.images[..shown * il]],
                shown,
                s.shape,
                3,
            )?;
            synthesis = serde_json::json!({
                "mode": dc.synthesis.mode,
                "count": s.len(),
                "bn_mismatch_start": s.bn_mismatch_start,
                "bn_mismatch_end": s.bn_mismatch_end,
                "image": file,
            });
            self.attacker = Some(a);
        }
        let attacker = self
            .attacker
            .as_mut()
            .expect("expected the DCI attacker created above");
        let out = attacker
            .attack(k, at.test_features)
            .map_err(|e| inversion_error(label, k, e))?;
        let test = at.test;
        let (mut record, m) = reconstruction_record(
            at.record("dci"),
            &test.images,
            &out.reconstructions,
            test.shape,
            at.scoring,
            at.ci_seed,
        )?;
        let true_mse: Vec<f64> = m.per_image.iter().map(|p| p.mse).collect();
        let rho = spearman(&out.cycle, &true_mse);
        let cycle_file = format!("{label}_split{k}_cycle.npy");
        let pairs: Vec<f32> = out
            .cycle
            .iter()
            .zip(&true_mse)
            .flat_map(|(c, e)| [*c as f32, *e as f32])
            .collect();
        crate::formats::npy::write_npy_f32(
            &at.scoring.out_dir.join(&cycle_file),
            &pairs,
            &[true_mse.len(), 2],
        )?;
        let cyc = &out.cycle;
        if out.under_trained {
            record.flag(
                "under-trained: a block inverse (or the refinement) never lowered its validation loss on held-out synthetic inputs".into(),
            );
        }
        record.details = serde_json::json!({
            "block_curves": out.block_curves,
            "refine_curves": out.refine_curves,
            "block_under_trained": out.block_under_trained,
            "train_rows": out.train_rows,
            "validation_rows": out.validation_rows,
            "cycle_consistency_mean": cyc.iter().sum::<f64>() / cyc.len().max(1) as f64,
            "cycle_error_spearman": rho,
            "cycle_file": cycle_file,
            "block_l1": out.block_l1,
            "synthetic_image_l1": out.image_l1,
            "synthesis": synthesis,
            "test_images": test.len(),
        });
        Ok(record)
    }
}
