//! The model-folder converter (`f2idiff pack`) on mutated small folders: safetensors headers
//! and sharded indexes, the diffusers / transformers `config.json`s, `f2idiff.json`, PEFT
//! `adapter_config.json` and both LoRA key spellings. Oracle: no panic, and a pack the converter
//! writes is one the reader opens and verifies.
//!
//! Input: an options byte, then a folder (`f2idiff_fuzz::folder_files`; tensor data is zeros).
#![no_main]

use f2idiff::convert::{LoraChoice, PackOptions, pack_folder};
use f2idiff::pack::Pack;
use f2idiff::tensor::DType;
use f2idiff_fuzz::{folder_files, scratch, write_folder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&opts, folder)) = input.split_first() else {
        return;
    };
    let files = folder_files(folder);
    let dir = scratch().join("model");
    write_folder(&dir, &files);
    let out = scratch().join("converted.f2i");
    let _ = std::fs::remove_file(&out);
    let options = PackOptions {
        dtype: [DType::F32, DType::F16, DType::BF16][(opts & 3) as usize % 3],
        lora: if opts & 4 != 0 {
            LoraChoice::Runtime
        } else {
            LoraChoice::Merge
        },
        lora_alpha: match (opts >> 3) & 3 {
            0 => None,
            1 => Some(8.0),
            2 => Some(0.0),
            _ => Some(-1.5),
        },
    };
    if pack_folder(&dir, &out, &options).is_ok() {
        let pack = Pack::open(&out).expect("the converter wrote a pack the reader refuses");
        pack.verify()
            .expect("the converter wrote a pack that fails verify");
    }
});
