//! Image input as the CLI reads it (`imageio::decode`, what `imageio::load` runs on a file's
//! bytes): PNG, JPEG, TIFF, WebP, 8 and 16 bits, odd sizes, truncated and lying files, within
//! decoder limits smaller than the CLI's so the fuzzer stays inside its memory limit.
#![no_main]

use f2idiff::imageio::{DecodeLimits, decode};
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::path::Path;
use std::sync::Once;

const LIMITS: DecodeLimits = DecodeLimits {
    max_side: 4096,
    max_pixels: 1 << 20,
};

thread_local! {
    /// Inside `decode`, which turns a decoder's panic into an error: such a panic is a
    /// third-party decoder bug that `decode` contains, not a crash of ours.
    static IN_DECODE: Cell<bool> = const { Cell::new(false) };
}

/// libFuzzer's panic hook aborts on every panic, even one that is caught; keep that for every
/// panic except those inside `decode`.
fn hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_DECODE.get() {
                abort_hook(info);
            }
        }));
    });
}

fuzz_target!(|bytes: &[u8]| {
    hook();
    IN_DECODE.set(true);
    let picture = decode(bytes, Path::new("fuzz"), &LIMITS);
    IN_DECODE.set(false);
    let Ok(p) = picture else {
        return;
    };
    assert!(p.width >= 1 && p.height >= 1);
    assert!(p.width as u64 * p.height as u64 <= LIMITS.max_pixels);
    assert_eq!(p.data.len(), 3 * p.width * p.height);
    assert!(p.data.iter().all(|v| (0.0..=1.0).contains(v)));
});
