//! The search's I/O: plan the candidates, run each evaluation through the
//! ordinary pipeline into `DIR/candidates/<id>/rung-<r>/`, read back what
//! it measured, and let [`super::select`] decide.
//!
//! Nothing but the run folders carries state: every call recomputes the
//! plan from the recipe, reads every finished evaluation back (a folder
//! whose `report.json` exists and whose `recipe.resolved.yaml` is this
//! evaluation's recipe), and runs the rest, so a killed search resumed
//! with `--resume` makes exactly the decisions, and writes exactly the
//! `harden.json`, an uninterrupted one does. Shards split each rung's
//! list like a sweep's points (`position % n == i`); a shard that finds a
//! rung incomplete stops there, and a later unsharded `--resume` (on the
//! folders gathered in one place) finishes the search.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::HardenConfig;
use super::answer::{self, Answer, CandidateSummary, RungSummary};
use super::select::{self, Scored, Verdict};
use super::space::{self, REFERENCE, Settings};
use crate::Error;
use crate::compare::{RunSummary, load_run};
use crate::fsutil::write_atomic;
use crate::pipeline::{self, RunObserver, RunOptions, files};
use crate::recipe::{LoadedRecipe, Override, Recipe, ResolvedRecipe, Shard};
use crate::run_folder::RunFolderError;

/// The plan a search writes first (`harden-plan.json`); a folder holding
/// another plan is refused.
pub const PLAN: &str = "harden-plan.json";

/// How to run a search.
#[derive(Clone, Debug)]
pub struct HardenOptions {
    /// The search folder.
    pub out_dir: PathBuf,
    /// Evaluate only this shard's share of each rung.
    pub shard: Option<Shard>,
    /// Continue a search in `out_dir` (and its partial evaluations).
    pub resume: bool,
    /// Stop, as a kill would, after this many evaluations ran in this call
    /// (`None`: no limit). For tests and for spreading a search over
    /// sessions; `--resume` continues.
    pub stop_after: Option<usize>,
}

/// One candidate of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// `reference`, `c000`, `c001`, ...
    pub id: String,
    /// Its settings in words (`split=2,nopeek=0.5`).
    pub label: String,
    /// Its settings.
    pub settings: Settings,
    /// The overrides on the base recipe (`path=value`).
    pub set: Vec<String>,
    /// The split it deploys at (with pruning: the budget's).
    pub split: usize,
    /// Edge FLOPs at that split before training (with pruning: the budget).
    pub edge_flops: u64,
    /// Why it is not searched (over the edge budget, or not a valid
    /// recipe); `None` when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
}

/// Everything decided before anything runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Recipe name.
    pub name: String,
    /// The recipe's seed (candidate sampling and every run).
    pub seed: u64,
    /// The `harden:` settings in effect (command-line budgets applied).
    pub config: HardenConfig,
    /// The undefended reference.
    pub reference: Planned,
    /// The candidates searched and excluded, in grid order.
    pub candidates: Vec<Planned>,
    /// Grid points not searched because of `max_candidates`.
    pub not_sampled: usize,
}

/// What a search (or one shard or one session of it) did.
#[derive(Debug)]
pub enum HardenOutcome {
    /// The search finished; the answer files are written.
    Answer {
        /// The answer.
        answer: Box<Answer>,
        /// Evaluations this call ran (`id/rung-r`).
        ran: Vec<String>,
        /// Files written.
        files: Vec<PathBuf>,
    },
    /// The search stopped before its answer.
    Incomplete {
        /// Evaluations this call ran (`id/rung-r`).
        ran: Vec<String>,
        /// Why it stopped and how to continue.
        reason: String,
    },
}

/// One evaluation's numbers, as `harden.json` records them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Rung (0-based; the last is the full one).
    pub rung: usize,
    /// The run folder, relative to the search folder.
    pub dir: String,
    /// Target accuracy on `test`, 0..1 (the mean over repeats).
    pub target_accuracy: f64,
    /// 95% t interval of the accuracy over repeats, if the run has repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_interval: Option<[f64; 2]>,
    /// Deployed split.
    pub split: usize,
    /// Edge FLOPs per query at the deployed split.
    pub edge_flops: u64,
    /// The strongest reconstruction attack at the deployed split (by the
    /// upper end of its interval).
    pub attack: String,
    /// Its PSNR (dB).
    pub psnr: f64,
    /// Its 95% interval: a bootstrap over test queries, or over repeats a t
    /// interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psnr_interval: Option<[f64; 2]>,
    /// The leakage judged: the interval's upper end (the PSNR without one).
    pub leakage: f64,
    /// The label-only floor's PSNR (class-mean image of the predicted
    /// label), when the report has floors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_floor_psnr: Option<f64>,
}

impl Evaluation {
    fn scored(&self, id: &str) -> Scored {
        Scored {
            id: id.to_string(),
            accuracy: self.target_accuracy,
            leakage: self.leakage,
            edge_flops: self.edge_flops,
        }
    }
}

/// The strongest reconstruction attack of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Strongest {
    /// Its key (`decoder`, `decoder-2`, ...).
    pub attack: String,
    /// Its PSNR (dB).
    pub psnr: f64,
    /// Its 95% interval, if it has one.
    pub interval: Option<[f64; 2]>,
    /// The interval's upper end (the PSNR without one).
    pub upper: f64,
}

/// The strongest reconstruction attack at the run's deployed split, judged
/// by the upper end of its PSNR interval (DESIGN section 10: "leakage
/// judged by the strongest attack's interval upper end"); the first of
/// equals wins.
pub fn strongest(run: &RunSummary) -> Option<Strongest> {
    run.deployed_attacks()
        .filter_map(|a| {
            let psnr = a.psnr.filter(|p| p.is_finite())?;
            let interval = match &run.repeats {
                Some(_) => run
                    .spread(a, "psnr")
                    .and_then(|s| Some([s.interval.lo?, s.interval.hi?])),
                None => a.psnr_ci,
            };
            Some(Strongest {
                attack: a.key().to_string(),
                psnr,
                interval,
                upper: interval.map_or(psnr, |[_, hi]| hi.max(psnr)),
            })
        })
        .fold(None, |best: Option<Strongest>, x| match best {
            Some(b) if b.upper >= x.upper => Some(b),
            _ => Some(x),
        })
}

/// The label-only floor's PSNR from a `report.json` (a single run's, or the
/// mean over a run's repeats).
fn label_floor(report: &Json) -> Option<f64> {
    let floors = report.get("floors")?;
    floors
        .get("label")
        .and_then(|l| l.get("psnr"))
        .or_else(|| {
            floors
                .get("label only (class mean): PSNR")
                .and_then(|s| s.get("mean"))
        })
        .and_then(Json::as_f64)
}

/// Reads a finished evaluation.
fn read_evaluation(root: &Path, rel: &str, rung: usize) -> Result<Evaluation, Error> {
    let dir = root.join(rel);
    let run = load_run(&dir)?;
    let path = dir.join(files::REPORT_JSON);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let json: Json = serde_json::from_str(&text).map_err(|e| Error::io(&path, e))?;
    let top = strongest(&run).ok_or_else(|| {
        Error::setting(
            "audit.attacks",
            format!(
                "{}: no reconstruction attack (decoder, optimisation, dci) at the deployed split {}; harden judges leakage by reconstruction PSNR",
                path.display(),
                run.split
            ),
        )
    })?;
    let accuracy_interval = crate::compare::target_accuracy_interval(&run).map(|(a, b)| [a, b]);
    Ok(Evaluation {
        rung,
        dir: rel.to_string(),
        target_accuracy: run.target_accuracy,
        accuracy_interval,
        split: run.split as usize,
        edge_flops: run.edge_flops,
        attack: top.attack,
        psnr: top.psnr,
        psnr_interval: top.interval,
        leakage: top.upper,
        label_floor_psnr: label_floor(&json),
    })
}

/// The search's fixed inputs: the plan and how to build each evaluation.
struct Space {
    plan: Plan,
    base: String,
    base_recipe: ResolvedRecipe,
    source: String,
}

impl Space {
    fn planned(&self, id: &str) -> &Planned {
        if id == REFERENCE {
            return &self.plan.reference;
        }
        self.plan
            .candidates
            .iter()
            .find(|c| c.id == id)
            .expect("candidate ids come from the plan")
    }

    /// The recipe of candidate `id` at rung `rung`.
    fn recipe(&self, id: &str, rung: usize) -> Result<LoadedRecipe, Error> {
        let p = self.planned(id);
        let cfg = &self.plan.config;
        let mut o = p.settings.overrides(cfg);
        o.push(Override {
            path: "name".into(),
            value: format!("{}-{id}", self.plan.name),
        });
        o.extend(space::rung_overrides(
            &self.base_recipe,
            cfg.rungs.get(rung),
            p.split,
        ));
        space::build(
            &self.base,
            &format!("{} (harden candidate {id}, rung {rung})", self.source),
            &o,
        )
    }
}

/// Plans a search: the reference, the grid, its sample, and each
/// candidate's split and edge cost (data shape read once).
fn plan(loaded: &LoadedRecipe, cfg: &HardenConfig) -> Result<Space, Error> {
    let recipe = &loaded.recipe;
    if space::cheap_attacker(&recipe.audit.attacks, 1).is_none() {
        return Err(Error::setting(
            format!("{}: audit.attacks", loaded.source),
            "harden judges leakage by reconstruction PSNR; list a decoder (or an optimisation or dci attack)",
        ));
    }
    let ds = pipeline::load_source(&recipe.data, recipe.seed)?;
    let shape = (ds.shape, ds.num_classes);
    drop(ds);
    let base = space::base_text(recipe);
    let (splits, reference_split) = space::splits(recipe, cfg)?;
    let locate = |settings: &Settings| -> Result<(usize, u64), String> {
        let o = settings.overrides(cfg);
        let r = space::build(&base, &loaded.source, &o)
            .map_err(|e| e.to_string())?
            .recipe;
        let spec = pipeline::model_spec(&r, shape.0, shape.1).map_err(|e| e.to_string())?;
        match &r.prune {
            Some(p) => {
                let plan = crate::prune::plan(p, &spec).map_err(|e| e.to_string())?;
                Ok((plan.split, plan.budget))
            }
            None => {
                let k = pipeline::training_split(&r, spec.blocks.len());
                let infos = spec.infos().map_err(|e| e.to_string())?;
                if !(1..spec.blocks.len()).contains(&k) {
                    return Err(format!(
                        "split {k} is not a split of this model (1..={})",
                        spec.blocks.len() - 1
                    ));
                }
                Ok((k, infos[..k].iter().map(|b| b.flops).sum()))
            }
        }
    };
    let planned = |id: String, settings: Settings| -> Planned {
        let set = settings
            .overrides(cfg)
            .iter()
            .map(|o| format!("{}={}", o.path, o.value))
            .collect();
        let (split, edge_flops, excluded) = match locate(&settings) {
            Ok((k, f)) => {
                let over = cfg.edge_flops.filter(|&b| f > b).map(|b| {
                    format!("over the edge budget before training: {f} FLOPs at split {k} > {b}")
                });
                (k, f, over)
            }
            Err(e) => (settings.split, 0, Some(format!("not a valid recipe: {e}"))),
        };
        Planned {
            id,
            label: settings.label(),
            settings,
            set,
            split,
            edge_flops,
            excluded,
        }
    };
    let reference = planned(REFERENCE.into(), space::reference(reference_split));
    if let Some(why) = &reference.excluded {
        return Err(Error::setting(
            format!("{}: harden", loaded.source),
            format!("the undefended reference cannot run: {why}"),
        ));
    }
    // Points that cannot run are listed (`x000`, ...), and the sample is
    // drawn from the others (`c000`, ...), both in grid order.
    let (ok, excluded): (Vec<Planned>, Vec<Planned>) = space::grid(cfg, &splits, reference_split)
        .into_iter()
        .map(|s| planned(String::new(), s))
        .partition(|p| p.excluded.is_none());
    let keep = select::sample(ok.len(), cfg.max_candidates, recipe.seed);
    let not_sampled = ok.len() - keep.len();
    let mut candidates: Vec<Planned> = keep
        .iter()
        .enumerate()
        .map(|(i, &g)| Planned {
            id: format!("c{i:03}"),
            ..ok[g].clone()
        })
        .collect();
    candidates.extend(excluded.into_iter().enumerate().map(|(i, p)| Planned {
        id: format!("x{i:03}"),
        ..p
    }));
    Ok(Space {
        plan: Plan {
            name: recipe.name.clone(),
            seed: recipe.seed,
            config: cfg.clone(),
            reference,
            candidates,
            not_sampled,
        },
        base,
        base_recipe: recipe.clone(),
        source: loaded.source.clone(),
    })
}

/// Writes the plan; a folder holding another one is refused, and one
/// holding this one needs `--resume` (or `--shard`, whose shards share it).
fn claim(plan: &Plan, opts: &HardenOptions) -> Result<(), Error> {
    let dir = &opts.out_dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(PLAN);
    // The time budget limits a session, not the search: a search stopped by
    // it resumes under another budget (or none).
    let mut identity = plan.clone();
    identity.config.budget_minutes = None;
    let text = serde_json::to_string_pretty(&identity).expect("plan serializes") + "\n";
    if let Ok(previous) = std::fs::read_to_string(&path) {
        if previous != text {
            return Err(RunFolderError::Foreign {
                dir: dir.to_path_buf(),
                what: format!(
                    "the folder holds another search (its {PLAN} differs: another recipe, budget or search space)"
                ),
            }
            .into());
        }
        if !opts.resume && opts.shard.is_none() {
            return Err(RunFolderError::Occupied {
                dir: dir.to_path_buf(),
                what: "this search",
                hint: "pass --resume to continue it, or --out to write elsewhere",
            }
            .into());
        }
        return Ok(());
    }
    write_atomic(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))
}

/// Whether `dir` holds a finished run of `recipe`; a run of another recipe
/// there is an error.
fn finished(dir: &Path, recipe: &Recipe) -> Result<bool, Error> {
    let rpath = dir.join(files::RECIPE);
    let Ok(previous) = std::fs::read_to_string(&rpath) else {
        return Ok(false);
    };
    if previous != serde_norway::to_string(recipe).expect("recipe serializes") {
        return Err(RunFolderError::Foreign {
            dir: dir.to_path_buf(),
            what: "holds a run of another recipe than this search's".into(),
        }
        .into());
    }
    Ok(dir.join(files::REPORT_JSON).is_file())
}

/// The folder of candidate `id` at rung `rung`, relative to the search folder.
pub fn evaluation_dir(id: &str, rung: usize) -> String {
    format!("candidates/{id}/rung-{rung}")
}

/// Runs (or continues) the search of `loaded` with `cfg` into
/// `opts.out_dir` and writes the answer when it is complete.
pub fn harden(
    loaded: &LoadedRecipe,
    cfg: &HardenConfig,
    opts: &HardenOptions,
    device: &Device,
    obs: &mut dyn RunObserver,
) -> Result<HardenOutcome, Error> {
    let started = Instant::now();
    let problems: Vec<String> = cfg
        .problems()
        .into_iter()
        .map(|(p, m)| format!("harden.{p}: {m}"))
        .collect();
    if !problems.is_empty() {
        return Err(crate::recipe::RecipeError::Invalid {
            file: loaded.source.clone(),
            problems,
        }
        .into());
    }
    obs.stage("harden", "planning the candidates");
    let space = plan(loaded, cfg)?;
    claim(&space.plan, opts)?;
    let root = &opts.out_dir;
    let rungs = cfg.rungs.len() + 1;
    let mut ran: Vec<String> = Vec::new();
    let mut evals: BTreeMap<String, Vec<Evaluation>> = BTreeMap::new();
    let mut survivors: Vec<String> = space
        .plan
        .candidates
        .iter()
        .filter(|c| c.excluded.is_none())
        .map(|c| c.id.clone())
        .collect();
    let mut rung_summaries = Vec::new();
    let mut status: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Vec<String> = Vec::new();
    for rung in 0..rungs {
        let full = rung + 1 == rungs;
        let list: Vec<String> = std::iter::once(REFERENCE.to_string())
            .chain(survivors.iter().cloned())
            .collect();
        let mut waiting = 0;
        for (position, id) in list.iter().enumerate() {
            let loaded = space.recipe(id, rung)?;
            let rel = evaluation_dir(id, rung);
            let dir = root.join(&rel);
            if !finished(&dir, &loaded.recipe)? {
                if opts.shard.is_some_and(|s| !s.includes(position)) {
                    waiting += 1;
                    continue;
                }
                if opts.stop_after.is_some_and(|n| ran.len() >= n) {
                    return Ok(HardenOutcome::Incomplete {
                        ran,
                        reason: "stopped as asked; continue with --resume".into(),
                    });
                }
                if let Some(m) = cfg.budget_minutes
                    && started.elapsed().as_secs_f64() >= 60.0 * m
                {
                    return Ok(HardenOutcome::Incomplete {
                        ran,
                        reason: format!(
                            "the budget of {m} minutes is spent (at rung {rung}); continue with --resume (and --budget-minutes)"
                        ),
                    });
                }
                obs.stage(
                    "harden",
                    &format!(
                        "rung {rung} of {} ({}): {id} {}",
                        rungs - 1,
                        if full { "full" } else { "cheap" },
                        space.planned(id).label
                    ),
                );
                pipeline::run(
                    &loaded,
                    &RunOptions {
                        out_dir: dir.clone(),
                        resume: opts.resume,
                    },
                    device,
                    obs,
                )?;
                ran.push(rel.clone());
            }
            evals
                .entry(id.clone())
                .or_default()
                .push(read_evaluation(root, &rel, rung)?);
        }
        if waiting > 0 {
            return Ok(HardenOutcome::Incomplete {
                ran,
                reason: format!(
                    "rung {rung}: {waiting} evaluation(s) belong to other shards; once every shard has run, gather the folders in one place and run `splitguard harden` there with --resume (no --shard) to continue"
                ),
            });
        }
        // Decide on this rung's numbers.
        let at = |id: &str| -> Evaluation {
            evals[id]
                .last()
                .expect("every listed id was evaluated")
                .clone()
        };
        let reference_accuracy = at(REFERENCE).target_accuracy;
        let mut within = Vec::new();
        for id in &survivors {
            let s = at(id).scored(id);
            match select::verdict(
                &s,
                reference_accuracy,
                cfg.max_accuracy_drop,
                cfg.edge_flops,
            ) {
                Verdict::Within => within.push(s),
                Verdict::OverAccuracy => {
                    status.insert(
                        id.clone(),
                        format!("over the accuracy budget at rung {rung}"),
                    );
                }
                Verdict::OverEdge => {
                    status.insert(id.clone(), format!("over the edge budget at rung {rung}"));
                }
            }
        }
        let promoted = match full {
            true => within.iter().map(|s| s.id.clone()).collect(),
            false => select::halve(&within, cfg.eta),
        };
        if !full {
            for s in &within {
                if !promoted.contains(&s.id) {
                    status.insert(s.id.clone(), format!("halved out at rung {rung}"));
                }
            }
        }
        rung_summaries.push(RungSummary {
            rung,
            full,
            epochs: cfg.rungs.get(rung).map(|r| r.epochs),
            attack_epochs: cfg.rungs.get(rung).map(|r| r.attack_epochs),
            data_limit: cfg.rungs.get(rung).and_then(|r| r.data_limit),
            evaluated: list.clone(),
            within: within.iter().map(|s| s.id.clone()).collect(),
            promoted: promoted.clone(),
        });
        last = list;
        if !full {
            survivors = promoted;
        } else {
            for id in &promoted {
                status.insert(id.clone(), "final: within the budgets".into());
            }
        }
    }
    // The answer, from the full rung.
    let reference_eval = evals[REFERENCE]
        .last()
        .expect("reference evaluated")
        .clone();
    let finalists: Vec<Scored> = last
        .iter()
        .map(|id| evals[id].last().expect("evaluated").scored(id))
        .collect();
    let front = select::pareto_front(&finalists);
    let chosen = select::choose(
        &finalists,
        reference_eval.target_accuracy,
        cfg.max_accuracy_drop,
        cfg.edge_flops,
    )
    .map(|i| finalists[i].id.clone());
    let candidates = space
        .plan
        .candidates
        .iter()
        .map(|c| CandidateSummary {
            id: c.id.clone(),
            label: c.label.clone(),
            set: c.set.clone(),
            status: c
                .excluded
                .clone()
                .or_else(|| status.get(&c.id).cloned())
                .unwrap_or_else(|| "not evaluated".into()),
            evaluations: evals.get(&c.id).cloned().unwrap_or_default(),
        })
        .collect();
    let chosen_recipe = match &chosen {
        Some(id) => Some(space.recipe(id, rungs - 1)?.recipe),
        None => None,
    };
    let answer = answer::assemble(answer::Parts {
        plan: &space.plan,
        rungs: rung_summaries,
        reference: reference_eval,
        candidates,
        front: front.iter().map(|&i| finalists[i].id.clone()).collect(),
        finalists: last
            .iter()
            .map(|id| (id.clone(), evals[id].last().expect("evaluated").clone()))
            .collect(),
        chosen,
    });
    let files = answer::write(&answer, chosen_recipe.as_deref(), root)?;
    Ok(HardenOutcome::Answer {
        answer: Box::new(answer),
        ran,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::AttackRecord;

    fn record(attack: &str, split: usize, psnr: f64, ci: [f64; 2]) -> AttackRecord {
        AttackRecord {
            attack: attack.into(),
            split,
            psnr: Some(psnr),
            psnr_ci: Some(ci),
            ..Default::default()
        }
    }

    #[test]
    fn leakage_is_the_largest_interval_upper_end_at_the_deployed_split() {
        let run = RunSummary {
            dir: PathBuf::from("r"),
            label: "r".into(),
            name: "r".into(),
            defenses: "none".into(),
            split: 2,
            edge_flops: 10,
            bytes_per_query: None,
            target_accuracy: 0.9,
            attacks: vec![
                // The highest PSNR, but at another split.
                record("decoder", 1, 30.0, [29.0, 31.0]),
                // Higher point estimate, narrower interval.
                record("decoder", 2, 20.0, [19.0, 21.0]),
                // Lower point estimate, higher upper end: the strongest.
                record("dci", 2, 19.5, [17.0, 22.0]),
                AttackRecord {
                    attack: "attribute".into(),
                    split: 2,
                    accuracy: Some(0.9),
                    ..Default::default()
                },
            ],
            repeats: None,
        };
        let top = strongest(&run).unwrap();
        assert_eq!(top.attack, "dci");
        assert_eq!(top.upper, 22.0);
        assert_eq!(top.interval, Some([17.0, 22.0]));
        let none = RunSummary {
            attacks: vec![record("decoder", 1, 30.0, [29.0, 31.0])],
            ..run
        };
        assert!(strongest(&none).is_none());
    }
}
