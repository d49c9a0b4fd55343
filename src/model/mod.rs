//! The three networks of F2IDiff-SR, written against [`crate::exec::Exec`] so they run on any
//! backend. Each file names its reference implementation and reads in the order of the
//! reference `forward`.

pub mod attention;
pub mod dinov2;
pub mod resnet;
pub mod transformer;
pub mod unet;
pub mod vae;
mod weights;

pub use weights::{Loader, PackWeights, WeightSource};
