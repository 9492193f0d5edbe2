//! The in-memory dataset every loader produces and every stage consumes.
//!
//! Pixels are stored as one flat `f32` vector (N*C*H*W, row-major) rather
//! than one allocation per image: building a batch tensor is then one slice
//! copy, and subsets are cheap to gather.

/// A labelled image dataset held in memory, pixels scaled to [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Human-readable name (used in reports), e.g. `mnist-t10k` or `orl`.
    pub name: String,
    /// Pixels, N*C*H*W row-major, each in [0, 1].
    pub images: Vec<f32>,
    /// Shape of one image: [C, H, W].
    pub shape: [usize; 3],
    /// Task label per image, each below `num_classes`.
    pub targets: Vec<u32>,
    /// Number of task classes (max label + 1 for the loaders here).
    pub num_classes: usize,
    /// Hidden attributes (may be empty), one value per image each.
    pub hidden: Vec<Attribute>,
}

/// A hidden attribute of every image (e.g. the writer group of a digit),
/// the target of attribute-inference attacks.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// Attribute name, e.g. `writer`.
    pub name: String,
    /// One value per image, each below `num_classes`.
    pub values: Vec<u32>,
    /// Number of distinct values the attribute can take.
    pub num_classes: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True when the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Number of values in one image: C*H*W.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Pixels of image `i` (C*H*W values). Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The hidden attribute called `name`, if the dataset has one.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.hidden.iter().find(|a| a.name == name)
    }

    /// Number of images of each task class (length `num_classes`).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &t in &self.targets {
            counts[t as usize] += 1;
        }
        counts
    }

    /// The images at `indices`, in that order (repeats allowed), with their
    /// labels and hidden attributes. Panics if an index is `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        let hidden = self
            .hidden
            .iter()
            .map(|a| Attribute {
                name: a.name.clone(),
                values: indices.iter().map(|&i| a.values[i]).collect(),
                num_classes: a.num_classes,
            })
            .collect();
        Dataset {
            name: self.name.clone(),
            images,
            shape: self.shape,
            targets: indices.iter().map(|&i| self.targets[i]).collect(),
            num_classes: self.num_classes,
            hidden,
        }
    }

    /// The first `n` images (all of them if `n >= len()`).
    pub fn take(&self, n: usize) -> Dataset {
        let indices: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&indices)
    }

    /// Checks the invariants every loader guarantees: pixel count matches
    /// the labels, labels and attribute values are below their class counts.
    /// Returns a description of the first violation.
    pub fn validate(&self) -> Result<(), String> {
        let want = self.len().checked_mul(self.image_len());
        if want != Some(self.images.len()) {
            return Err(format!(
                "{} pixels for {} images of shape {:?}",
                self.images.len(),
                self.len(),
                self.shape
            ));
        }
        if let Some(&t) = self
            .targets
            .iter()
            .find(|&&t| t as usize >= self.num_classes)
        {
            return Err(format!("target {t} >= num_classes {}", self.num_classes));
        }
        for a in &self.hidden {
            if a.values.len() != self.len() {
                return Err(format!(
                    "attribute '{}' has {} values for {} images",
                    a.name,
                    a.values.len(),
                    self.len()
                ));
            }
            if let Some(&v) = a.values.iter().find(|&&v| v as usize >= a.num_classes) {
                return Err(format!(
                    "attribute '{}' value {v} >= num_classes {}",
                    a.name, a.num_classes
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A dataset of `n` 1x1x2 images whose pixels encode their index, with
    /// `targets[i] = i % classes` and a hidden attribute `i % 2`.
    pub(crate) fn toy(n: usize, classes: u32) -> Dataset {
        Dataset {
            name: "toy".into(),
            images: (0..n).flat_map(|i| [i as f32, -(i as f32)]).collect(),
            shape: [1, 1, 2],
            targets: (0..n as u32).map(|i| i % classes).collect(),
            num_classes: classes as usize,
            hidden: vec![Attribute {
                name: "parity".into(),
                values: (0..n as u32).map(|i| i % 2).collect(),
                num_classes: 2,
            }],
        }
    }

    #[test]
    fn image_returns_the_ith_block() {
        let ds = toy(4, 3);
        assert_eq!(ds.len(), 4);
        assert_eq!(ds.image_len(), 2);
        assert_eq!(ds.image(2), &[2.0, -2.0]);
        assert!(ds.validate().is_ok());
    }

    #[test]
    fn subset_keeps_order_and_all_fields() {
        let ds = toy(5, 3);
        let sub = ds.subset(&[4, 0, 4]);
        assert_eq!(sub.images, vec![4.0, -4.0, 0.0, -0.0, 4.0, -4.0]);
        assert_eq!(sub.targets, vec![1, 0, 1]);
        assert_eq!(sub.hidden[0].values, vec![0, 0, 0]);
        assert_eq!(sub.num_classes, 3);
        assert!(sub.validate().is_ok());
    }

    #[test]
    fn take_clamps_to_len() {
        let ds = toy(3, 2);
        assert_eq!(ds.take(2).targets, vec![0, 1]);
        assert_eq!(ds.take(10).len(), 3);
        assert!(ds.take(0).is_empty());
    }

    #[test]
    fn class_counts_and_attribute_lookup() {
        let ds = toy(5, 2);
        assert_eq!(ds.class_counts(), vec![3, 2]);
        assert_eq!(ds.attribute("parity").map(|a| a.num_classes), Some(2));
        assert!(ds.attribute("writer").is_none());
    }

    #[test]
    fn validate_catches_out_of_range_target() {
        let mut ds = toy(3, 2);
        ds.targets[1] = 2;
        assert!(ds.validate().unwrap_err().contains("target 2"));
    }
}
