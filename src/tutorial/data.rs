//! The tutorial's one real data set: the UCI handwritten digits.
//!
//! 1,797 grey images of 8×8 pixels, each pixel a count 0–16 of the "on" pixels of a 4×4
//! block of the original 32×32 bitmap, labelled 0–9 (Alpaydin & Kaynak, 1998; UCI Machine
//! Learning Repository, CC BY 4.0). The file is the one scikit-learn ships as
//! `digits.csv.gz`, decompressed; `data/digits/README.md` gives its source, licence and
//! checksums. It is compiled into the tutorial, so the chapter runs from any directory.

use autograd::{Element, Tensor};
use nn::data::Dataset;

/// The file: one image per line, 64 pixel counts row by row, then the label.
pub const DIGITS_CSV: &str = include_str!("../../data/digits/digits.csv");

/// The rows `rows` of a data set, in that order (a training or test split).
pub fn subset<T: Element>(data: &Dataset<T>, rows: &[usize]) -> Dataset<T> {
    Dataset {
        x: data.x.index_select(0, rows),
        labels: rows.iter().map(|&r| data.labels[r]).collect(),
    }
}

/// Parses the digits file into images `[N, 1, 8, 8]` (pixel counts divided by 16, so in
/// `[0, 1]`) and their labels.
///
/// # Errors
/// A message naming the line, if a line does not hold 65 integers with pixels in 0–16 and
/// a label in 0–9.
pub fn parse_digits(text: &str) -> Result<Dataset<f32>, String> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let values: Vec<u32> = line
            .split(',')
            .map(|v| v.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("digits line {}: {e}", i + 1))?;
        let [image @ .., label] = values.as_slice() else {
            return Err(format!("digits line {}: empty", i + 1));
        };
        if image.len() != 64 || image.iter().any(|&p| p > 16) || *label > 9 {
            return Err(format!(
                "digits line {}: expected 64 pixels in 0–16 and a label in 0–9, got {} values",
                i + 1,
                values.len()
            ));
        }
        pixels.extend(image.iter().map(|&p| p as f32 / 16.0));
        labels.push(*label as usize);
    }
    let n = labels.len();
    let x = Tensor::from_vec(pixels, &[n, 1, 8, 8]).map_err(|e| e.to_string())?;
    Ok(Dataset { x, labels })
}

/// The 1,797 digits of the file compiled into the tutorial.
///
/// # Panics
/// If the compiled-in file does not parse (a test parses it).
pub fn digits() -> Dataset<f32> {
    parse_digits(DIGITS_CSV).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_1797_images_of_ten_digits() {
        let d = digits();
        assert_eq!(d.x.shape(), &[1797, 1, 8, 8]);
        let mut per_class = [0usize; 10];
        for &l in &d.labels {
            per_class[l] += 1;
        }
        // Between 174 and 183 images of each digit.
        assert!(
            per_class.iter().all(|&c| (174..=183).contains(&c)),
            "{per_class:?}"
        );
        assert!(d.x.data().iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert!(parse_digits("1,2,3\n").unwrap_err().contains("line 1"));
        assert!(parse_digits("x\n").is_err());
    }
}
