//! The pack format round-trips: what the writer is given is what the loader hands out, in
//! place, aligned, for every dtype.

mod common;

use f2idiff::pack::{Pack, format};
use f2idiff::tensor::{DType, encode_f32};

#[test]
fn round_trip_every_dtype() {
    for dtype in DType::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.f2i");
        let plans = common::tiny_pack(&path, dtype);
        let pack = Pack::open(&path).unwrap();
        pack.verify().unwrap();
        assert_eq!(pack.entries().len(), plans.len());
        let base = pack.tensor(&plans[0].name).unwrap().data.as_ptr() as usize;
        for (i, p) in plans.iter().enumerate() {
            let t = pack.tensor(&p.name).unwrap();
            assert_eq!((t.dtype, t.shape), (dtype, p.shape.as_slice()));
            let n = p.shape.iter().product();
            assert_eq!(
                t.data,
                encode_f32(dtype, &common::values(i, n)).as_slice(),
                "{}",
                p.name
            );
            let addr = t.data.as_ptr() as usize;
            assert_eq!(
                (addr - base) % format::TENSOR_ALIGN as usize,
                0,
                "{} misaligned",
                p.name
            );
        }
        assert_eq!(pack.preamble().data_offset % format::DATA_ALIGN, 0);
        assert!(pack.tensor("unet.nope").is_none());
        assert!(
            pack.require("unet.nope")
                .unwrap_err()
                .to_string()
                .contains("unet.nope")
        );
        // The configs come back typed.
        assert_eq!(pack.configs().unet.levels.len(), 2);
        assert_eq!(pack.configs().dinov2.hidden_size, 24);
    }
}

#[test]
fn data_section_is_page_aligned_in_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.f2i");
    let plans = common::tiny_pack(&path, DType::F32);
    let pack = Pack::open(&path).unwrap();
    let first = pack.tensor(&plans[0].name).unwrap();
    assert_eq!(first.data.as_ptr() as usize % 4096, 0);
}
