//! Every crash the fuzzers (`fuzz/`, `scripts/fuzz.sh`) found, as the input that caused it,
//! and the limits a host relies on (docs/SECURITY.md), each refused with a typed error.

mod common;

use f2idiff::ErrorKind;
use f2idiff::imageio::{DecodeLimits, decode};
use f2idiff::pack::format::{self, MAX_HEADER_BYTES, MAX_PACK_BYTES, MAX_TENSORS};
use f2idiff::pack::{Pack, PackLoad, TensorPlan, write_pack};
use f2idiff::tensor::DType;
use std::path::Path;

const DATA: &str = "tests/data/fuzz";

fn error<T>(r: f2idiff::Result<T>) -> f2idiff::Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn kind<T>(r: f2idiff::Result<T>) -> ErrorKind {
    error(r).kind()
}

/// fuzz `image`: a TIFF whose SampleFormat tag has no values made the `tiff` crate index an
/// empty list (a panic, so the CLI died). `decode` now turns a decoder panic into an error.
#[test]
fn tiff_with_an_empty_sample_format_is_an_image_error() {
    let bytes = std::fs::read(format!("{DATA}/image-tiff-empty-sample-format.tif")).unwrap();
    let err = error(decode(&bytes, Path::new("x.tif"), &DecodeLimits::default()));
    assert!(matches!(err, f2idiff::Error::Image { .. }), "{err}");
}

/// The decoder limits are checked from the header, before pixels are decoded.
#[test]
fn images_beyond_the_decode_limits_are_refused_before_decoding() {
    let img = image::RgbImage::new(40, 30);
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    let ok = decode(&png, Path::new("x.png"), &DecodeLimits::default()).unwrap();
    assert_eq!((ok.width, ok.height, ok.data.len()), (40, 30, 3 * 40 * 30));
    for limits in [
        DecodeLimits {
            max_side: 39,
            max_pixels: 1 << 20,
        },
        DecodeLimits {
            max_side: 100,
            max_pixels: 40 * 30 - 1,
        },
    ] {
        let err = error(decode(&png, Path::new("x.png"), &limits));
        assert!(err.to_string().contains("larger than"), "{err}");
    }
}

/// `Pack::from_bytes` runs the checks `Pack::open` runs, on the same bytes.
#[test]
fn a_pack_from_bytes_is_the_pack_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.f2i");
    common::tiny_pack(&path, DType::F16);
    let bytes = std::fs::read(&path).unwrap();
    let (a, b) = (
        Pack::open(&path).unwrap(),
        Pack::from_bytes(&path, &bytes).unwrap(),
    );
    b.verify().unwrap();
    assert_eq!(a.header(), b.header());
    assert_eq!(a.entries(), b.entries());
    for e in a.entries() {
        assert_eq!(
            a.tensor(&e.name).unwrap().data,
            b.tensor(&e.name).unwrap().data
        );
    }
    // A damaged copy fails the same way as the damaged file.
    let mut bad = bytes.clone();
    bad[200] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert_eq!(
        error(Pack::open(&path)).to_string(),
        error(Pack::from_bytes(&path, &bad)).to_string()
    );
}

/// A file larger than `MAX_PACK_BYTES` is refused before it is read or mapped (a sparse file:
/// no disk space is used).
#[test]
fn packs_larger_than_the_limit_are_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.f2i");
    let f = std::fs::File::create(&path).unwrap();
    if f.set_len(MAX_PACK_BYTES + 1).is_err() {
        eprintln!("skipped: no sparse files here");
        return;
    }
    for load in [PackLoad::Private, PackLoad::Mapped] {
        assert_eq!(kind(Pack::open_with(&path, load)), ErrorKind::Unsupported);
    }
}

/// Preamble + header + table with consistent checksums around a table of `count` entries.
fn pack_with_table(count: u32, entry_bytes: usize) -> Vec<u8> {
    let header = b"{}";
    let mut table = count.to_le_bytes().to_vec();
    table.resize(4 + count as usize * entry_bytes, 0);
    let pre = format::Preamble {
        version: format::VERSION,
        flags: 0,
        header_offset: format::PREAMBLE_LEN as u64,
        header_len: header.len() as u64,
        table_offset: format::PREAMBLE_LEN as u64 + header.len() as u64,
        table_len: table.len() as u64,
        data_offset: format::align_up(
            (format::PREAMBLE_LEN + header.len() + table.len()) as u64,
            format::DATA_ALIGN,
        ),
        data_len: 0,
        header_crc: crc32fast::hash(header),
        table_crc: crc32fast::hash(&table),
    };
    let mut file = pre.encode().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&table);
    file.resize(pre.data_offset as usize, 0);
    file
}

#[test]
fn tables_beyond_max_tensors_are_unsupported() {
    let n = MAX_TENSORS as u32 + 1;
    let table = pack_with_table(n, 24);
    let pre = common::read_preamble(&table);
    let bytes = &table[pre.table_offset as usize..(pre.table_offset + pre.table_len) as usize];
    let err = format::decode_table(Path::new("x"), bytes, 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    // A count the table's bytes cannot hold stays a corrupt table.
    let short = &bytes[..bytes.len() - 24];
    let err = format::decode_table(Path::new("x"), short, 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Format, "{err}");
}

#[test]
fn headers_beyond_max_header_bytes_are_unsupported() {
    let mut file = pack_with_table(0, 24);
    let mut pre = common::read_preamble(&file);
    pre.header_len = MAX_HEADER_BYTES + 1;
    file[..format::PREAMBLE_LEN].copy_from_slice(&pre.encode());
    assert_eq!(
        kind(Pack::from_bytes("x.f2i", &file)),
        ErrorKind::Unsupported
    );
}

/// The writer refuses what the reader would refuse.
#[test]
fn the_writer_refuses_more_than_max_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let header = common::header_for(&common::tiny_configs(), DType::F32);
    let plans: Vec<TensorPlan> = (0..=MAX_TENSORS)
        .map(|i| TensorPlan {
            name: format!("t{i}"),
            dtype: DType::F32,
            shape: vec![1],
        })
        .collect();
    let path = dir.path().join("many.f2i");
    let r = write_pack(&path, &header, &plans, |_| Ok(vec![0; 4]));
    assert_eq!(kind(r), ErrorKind::InvalidArgument);
    assert!(!path.exists());
}
