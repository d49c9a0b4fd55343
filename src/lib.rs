//! f2idiff: an inference SDK for F2IDiff-SR, one-step diffusion super-resolution whose U-Net is
//! conditioned on DINOv2 features of the low-resolution image.
//!
//! This crate holds the packed model file ([`pack`]), the converter from the diffusers /
//! transformers / PEFT folders users have ([`convert`]), and the configs and weight manifests
//! of the three networks ([`config`], [`manifest`]).

pub mod arena;
pub mod backend;
pub mod bench;
pub mod calibrate;
pub mod capi;
pub mod config;
pub mod convert;
pub mod device;
pub mod engine;
pub mod error;
pub mod exec;
pub mod imageio;
pub mod manifest;
pub mod model;
pub mod pack;
pub mod pipeline;
pub mod tensor;

pub use error::{Error, ErrorKind, Result};
