//! Writes the committed seed corpora under `fuzz/seeds/<target>/`:
//! `cargo run --release --bin make_seeds` (from `fuzz/`). Deterministic.

use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use f2idiff::tensor::DType;
use f2idiff_fuzz::{FolderFile, encode_folder, folder_input, pack_input, scratch, tiny_folder};
use image::{DynamicImage, ImageBuffer, ImageFormat};
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    std::fs::create_dir_all(&dir).expect("seeds folder");
    std::fs::write(dir.join(name), bytes).expect("seed");
}

/// Deterministic bytes.
fn noise(seed: u32, n: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as u8
        })
        .collect()
}

fn main() {
    let tiny = tiny_folder();
    let osediff = tiny.with_file_name("osediff");

    // Packs: the tiny model merged in f32 and runtime LoRA in f16, metadata only.
    for (name, dtype, lora) in [
        ("tiny-f32-merged", DType::F32, LoraChoice::Merge),
        ("tiny-f16-runtime", DType::F16, LoraChoice::Runtime),
    ] {
        let out = scratch().join(format!("{name}.f2i"));
        let opts = PackOptions {
            dtype,
            lora,
            lora_alpha: None,
        };
        pack_folder(&tiny, &out, &opts).expect("tiny packs");
        write(
            "pack",
            name,
            &pack_input(&std::fs::read(&out).expect("pack")),
        );
    }

    // Folders: PEFT with a sharded U-Net, osediff's named adapters, diffusers' LoRA spelling.
    let with_opts = |opts: u8, files: &[FolderFile]| {
        let mut v = vec![opts];
        v.extend(folder_input(files));
        v
    };
    let peft = encode_folder(&tiny);
    write("convert", "tiny-peft-merge", &with_opts(0, &peft));
    write(
        "convert",
        "osediff",
        &with_opts(0, &encode_folder(&osediff)),
    );
    let diffusers: Vec<FolderFile> = peft
        .iter()
        .map(|f| {
            let mut f = f.clone();
            if f.path == "unet_lora/adapter_model.safetensors" {
                f.path = "unet_lora/pytorch_lora_weights.safetensors".into();
                let text = String::from_utf8(f.content).expect("utf-8 header");
                f.content = text.replace("base_model.model.", "unet.").into_bytes();
            }
            f
        })
        .collect();
    write("convert", "tiny-diffusers-lora", &with_opts(0, &diffusers));

    // C boundary: structured inputs are read byte by byte; zeros are the defaults.
    write("capi", "defaults", &[0u8; 48]);
    for i in 0..12 {
        write("capi", &format!("noise-{i:02}"), &noise(0x5eed + i, 64));
    }

    // Images: each format, 8 and 16 bits, odd sizes, grey and alpha, one truncated.
    let rgb8 = ImageBuffer::from_fn(7, 5, |x, y| {
        image::Rgb([(x * 36) as u8, (y * 50) as u8, 99])
    });
    let rgb16 = ImageBuffer::from_fn(3, 9, |x, y| {
        image::Rgb([(x * 20000) as u16, (y * 7000) as u16, 65535])
    });
    let images: [(&str, DynamicImage, ImageFormat); 8] = [
        (
            "rgb8.png",
            DynamicImage::ImageRgb8(rgb8.clone()),
            ImageFormat::Png,
        ),
        (
            "rgb16.png",
            DynamicImage::ImageRgb16(rgb16.clone()),
            ImageFormat::Png,
        ),
        (
            "rgb16.tif",
            DynamicImage::ImageRgb16(rgb16),
            ImageFormat::Tiff,
        ),
        (
            "rgb8.jpg",
            DynamicImage::ImageRgb8(rgb8.clone()),
            ImageFormat::Jpeg,
        ),
        (
            "rgb8.webp",
            DynamicImage::ImageRgb8(rgb8.clone()),
            ImageFormat::WebP,
        ),
        (
            "grey.png",
            DynamicImage::ImageRgb8(rgb8.clone()).grayscale(),
            ImageFormat::Png,
        ),
        (
            "greyalpha16.png",
            DynamicImage::ImageLumaA16(ImageBuffer::from_fn(1, 3, |_, y| {
                image::LumaA([y as u16 * 999, 40000])
            })),
            ImageFormat::Png,
        ),
        (
            "rgba8.tif",
            DynamicImage::ImageRgba8(ImageBuffer::from_fn(2, 1, |x, _| {
                image::Rgba([x as u8, 2, 3, 4])
            })),
            ImageFormat::Tiff,
        ),
    ];
    for (name, img, format) in images {
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, format).expect("encode");
        let bytes = bytes.into_inner();
        if name == "rgb8.png" {
            write("image", "rgb8-truncated.png", &bytes[..bytes.len() * 2 / 3]);
        }
        write("image", name, &bytes);
    }
}
