//! `[plugin.plot]`: picture sizes, frames, and the rendered-picture cache.

use serde::Deserialize;

/// The plot plugin's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// Size of a picture without `width`/`height`.
    pub(crate) default_width: u32,
    pub(crate) default_height: u32,
    /// Largest `width` and `height` a request may ask for.
    pub(crate) max_width: u32,
    pub(crate) max_height: u32,
    /// Most frames of an animation.
    pub(crate) max_frames: usize,
    /// Milliseconds per animation frame.
    pub(crate) frame_ms: u16,
    /// Bytes of rendered answers kept (0: none).
    pub(crate) cache_bytes: u64,
    /// `Cache-Control` of answers.
    pub(crate) cache_control: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_width: 800,
            default_height: 450,
            max_width: 2400,
            max_height: 2400,
            max_frames: 48,
            frame_ms: 500,
            cache_bytes: 64 << 20,
            cache_control: "public, max-age=300".to_owned(),
        }
    }
}
