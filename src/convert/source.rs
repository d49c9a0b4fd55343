//! Users' safetensors files, mapped read-only: a single file, or shards listed by a
//! `*.safetensors.index.json` (`{"weight_map": {tensor: shard file}}`).

use crate::error::{Error, Result};
use crate::tensor::DType;
use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, TensorInfo};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

struct StFile {
    path: PathBuf,
    map: Mmap,
    data_start: usize,
    tensors: BTreeMap<String, TensorInfo>,
}

/// The tensors of one checkpoint, possibly spread over several files.
pub struct TensorSet {
    files: Vec<StFile>,
    /// Tensor name → index into `files`.
    index: BTreeMap<String, usize>,
    /// Every file read, including an index file, for provenance.
    sources: Vec<PathBuf>,
}

/// A tensor in a source file.
#[derive(Clone, Copy)]
pub struct SrcTensor<'a> {
    pub name: &'a str,
    pub path: &'a Path,
    pub dtype: Dtype,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

impl SrcTensor<'_> {
    /// The storage type, if this SDK can read it.
    pub fn dtype(&self) -> Result<DType> {
        match self.dtype {
            Dtype::F32 => Ok(DType::F32),
            Dtype::F16 => Ok(DType::F16),
            Dtype::BF16 => Ok(DType::BF16),
            other => Err(Error::Dtype {
                path: self.path.to_path_buf(),
                tensor: self.name.to_string(),
                dtype: format!("{other:?}"),
            }),
        }
    }

    pub fn to_f32(&self) -> Result<Vec<f32>> {
        Ok(crate::tensor::decode_f32(self.dtype()?, self.data))
    }
}

fn open_file(path: &Path) -> Result<StFile> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: read-only map of a file the converter only reads; every access goes through the
    // offsets that `read_metadata` validated against the map's length.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let (header_len, meta) = SafeTensors::read_metadata(&map).map_err(|e| Error::Safetensors {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let tensors = meta
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, info.clone()))
        .collect();
    Ok(StFile {
        path: path.to_path_buf(),
        map,
        data_start: 8 + header_len,
        tensors,
    })
}

impl TensorSet {
    /// One safetensors file.
    pub fn open_file(path: &Path) -> Result<TensorSet> {
        let f = open_file(path)?;
        let index = f.tensors.keys().map(|k| (k.clone(), 0)).collect();
        Ok(TensorSet {
            sources: vec![f.path.clone()],
            files: vec![f],
            index,
        })
    }

    /// `dir/{stem}.safetensors`, or the shards listed in `dir/{stem}.safetensors.index.json`.
    pub fn open_dir(dir: &Path, stem: &str) -> Result<TensorSet> {
        let single = dir.join(format!("{stem}.safetensors"));
        let index_path = dir.join(format!("{stem}.safetensors.index.json"));
        if single.is_file() || !index_path.is_file() {
            return TensorSet::open_file(&single);
        }
        TensorSet::open_sharded(&index_path)
    }

    fn open_sharded(index_path: &Path) -> Result<TensorSet> {
        let json = crate::config::read_json(index_path)?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::config(index_path, "no `weight_map` object"))?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let mut files: Vec<StFile> = Vec::new();
        let mut index = BTreeMap::new();
        for (tensor, shard) in map {
            let shard = shard
                .as_str()
                .filter(|s| !s.contains('/') && !s.contains('\\') && !s.starts_with('.'))
                .ok_or_else(|| {
                    Error::config(
                        index_path,
                        format!("`{tensor}`: shard {shard} is not a file name"),
                    )
                })?;
            let path = dir.join(shard);
            let i = match files.iter().position(|f| f.path == path) {
                Some(i) => i,
                None => {
                    files.push(open_file(&path)?);
                    files.len() - 1
                }
            };
            if !files[i].tensors.contains_key(tensor) {
                return Err(Error::Safetensors {
                    path,
                    msg: format!("the index places `{tensor}` here, but the shard lacks it"),
                });
            }
            index.insert(tensor.clone(), i);
        }
        let mut sources = vec![index_path.to_path_buf()];
        sources.extend(files.iter().map(|f| f.path.clone()));
        Ok(TensorSet {
            files,
            index,
            sources,
        })
    }

    pub fn get(&self, name: &str) -> Option<SrcTensor<'_>> {
        let f = &self.files[*self.index.get(name)?];
        let info = f.tensors.get(name)?;
        let (start, end) = info.data_offsets;
        Some(SrcTensor {
            name: self.index.get_key_value(name)?.0,
            path: &f.path,
            dtype: info.dtype,
            shape: &info.shape,
            data: &f.map[f.data_start + start..f.data_start + end],
        })
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Every file this set was read from.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// The file a missing tensor would be reported against.
    pub fn primary_path(&self) -> &Path {
        &self.sources[0]
    }
}
