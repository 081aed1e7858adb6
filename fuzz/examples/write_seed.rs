//! Writes the seed corpus of the `io_from_bytes` target: the fuzzed module saved with
//! `nn::io::to_bytes`, as f32 and as f64. Run from `fuzz/`:
//! `cargo run --example write_seed`.

use wengert_fuzz::module;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/io_from_bytes");
    std::fs::create_dir_all(&dir)?;
    let f32_bytes = nn::io::to_bytes(&module::<f32>())?;
    let f64_bytes = nn::io::to_bytes(&module::<f64>())?;
    std::fs::write(dir.join("seed-linear-bn-f32.safetensors"), &f32_bytes)?;
    std::fs::write(dir.join("seed-linear-bn-f64.safetensors"), &f64_bytes)?;
    println!(
        "wrote {} and {} bytes to {}",
        f32_bytes.len(),
        f64_bytes.len(),
        dir.display()
    );
    Ok(())
}
