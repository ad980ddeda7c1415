//! Colour maps by matplotlib's names (`_r` reverses), from the tables d3 ships (`colorous`,
//! the same data as matplotlib's), plus matplotlib's `coolwarm` (Moreland's diverging map)
//! and `gray`.

use colorous::Gradient;

/// An RGB colour.
pub(crate) type Rgb = [u8; 3];

/// The maps offered, by the name requests use; diverging ones are centred on 0 when the
/// data span 0.
const MAPS: [(&str, Map, bool); 15] = [
    ("viridis", Map::Gradient(colorous::VIRIDIS), false),
    ("plasma", Map::Gradient(colorous::PLASMA), false),
    ("inferno", Map::Gradient(colorous::INFERNO), false),
    ("magma", Map::Gradient(colorous::MAGMA), false),
    ("cividis", Map::Gradient(colorous::CIVIDIS), false),
    ("turbo", Map::Gradient(colorous::TURBO), false),
    ("coolwarm", Map::CoolWarm, true),
    ("RdBu", Map::Gradient(colorous::RED_BLUE), true),
    ("BrBG", Map::Gradient(colorous::BROWN_GREEN), true),
    ("Spectral", Map::Gradient(colorous::SPECTRAL), true),
    ("Blues", Map::Gradient(colorous::BLUES), false),
    ("Reds", Map::Gradient(colorous::REDS), false),
    ("YlGnBu", Map::Gradient(colorous::YELLOW_GREEN_BLUE), false),
    ("Greys", Map::Gradient(colorous::GREYS), false),
    ("gray", Map::Gray, false),
];

/// Moreland's coolwarm at 1/16 steps (matplotlib's `coolwarm`).
const COOLWARM: [Rgb; 17] = [
    [59, 76, 192],
    [77, 104, 215],
    [98, 130, 234],
    [119, 154, 247],
    [141, 176, 254],
    [163, 194, 255],
    [184, 208, 249],
    [204, 217, 238],
    [221, 221, 221],
    [236, 211, 197],
    [245, 196, 173],
    [247, 177, 148],
    [244, 154, 123],
    [236, 127, 99],
    [222, 96, 77],
    [203, 62, 56],
    [180, 4, 38],
];

#[derive(Clone, Copy)]
enum Map {
    Gradient(Gradient),
    CoolWarm,
    Gray,
}

/// A colour map, possibly reversed.
#[derive(Clone, Copy)]
pub(crate) struct Colormap {
    map: Map,
    reversed: bool,
    /// Whether it is diverging (centred on 0 when the data span 0).
    pub(crate) diverging: bool,
}

impl std::fmt::Debug for Colormap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Colormap").field("reversed", &self.reversed).field("diverging", &self.diverging).finish()
    }
}

impl Colormap {
    /// The map named `name` (matplotlib's spelling, any case; `_r` reverses).
    pub(crate) fn named(name: &str) -> Option<Self> {
        let (base, reversed) = match name.strip_suffix("_r") {
            Some(base) => (base, true),
            None => (name, false),
        };
        MAPS.iter().find(|(known, _, _)| known.eq_ignore_ascii_case(base)).map(|&(_, map, diverging)| Self {
            map,
            reversed,
            diverging,
        })
    }

    /// The names offered, for error messages.
    pub(crate) fn names() -> String {
        let names: Vec<&str> = MAPS.iter().map(|(name, _, _)| *name).collect();
        format!("{} (and each with _r)", names.join(", "))
    }

    /// The colour at `t` in 0–1 (clamped).
    pub(crate) fn at(&self, t: f64) -> Rgb {
        let t = if self.reversed { 1.0 - t.clamp(0.0, 1.0) } else { t.clamp(0.0, 1.0) };
        match self.map {
            Map::Gradient(gradient) => {
                let c = gradient.eval_continuous(t);
                [c.r, c.g, c.b]
            }
            Map::Gray => {
                let v = (t * 255.0).round() as u8;
                [v, v, v]
            }
            Map::CoolWarm => {
                let at = t * 16.0;
                let i = (at.floor() as usize).min(15);
                let f = at - i as f64;
                let (a, b) = (COOLWARM[i], COOLWARM[i + 1]);
                [0, 1, 2].map(|k| (f64::from(a[k]) + f * (f64::from(b[k]) - f64::from(a[k]))).round() as u8)
            }
        }
    }

    /// 256 colours from 0 to 1, to colour many values without evaluating the map each time.
    pub(crate) fn table(&self) -> Vec<Rgb> {
        (0..256).map(|i| self.at(f64::from(i) / 255.0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ends_and_reversal() {
        let viridis = Colormap::named("viridis").unwrap();
        // matplotlib's viridis(0) and viridis(1): #440154 and #fde725.
        assert_eq!(viridis.at(0.0), [0x44, 0x01, 0x54]);
        assert_eq!(viridis.at(1.0), [0xfd, 0xe7, 0x25]);
        assert_eq!(Colormap::named("viridis_r").unwrap().at(0.0), [0xfd, 0xe7, 0x25]);
        assert_eq!(Colormap::named("gray").unwrap().at(1.0), [255, 255, 255]);
        assert_eq!(Colormap::named("coolwarm").unwrap().at(0.5), [221, 221, 221]);
        assert!(Colormap::named("RdBu_r").unwrap().diverging);
        assert!(Colormap::named("rdbu").is_some());
        assert!(Colormap::named("jet").is_none());
        assert!(Colormap::names().contains("YlGnBu"));
        assert_eq!(viridis.table()[255], viridis.at(1.0));
    }
}
