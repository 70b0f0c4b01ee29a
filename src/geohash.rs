//! Geohash encoding and the geometry behind the GEO commands (upstream's `geohash.c`
//! and `geohash_helper.c`): 52-bit interleaved hashes over the Web Mercator coordinate
//! limits, neighbour cells, the 9-cell search area of a shape, and haversine distances.
//! The arithmetic follows upstream step by step so that scores, cells and distances are
//! bit-identical.

pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
/// Bits per coordinate of a stored score.
pub const STEP_MAX: u8 = 26;

const D_R: f64 = std::f64::consts::PI / 180.0;
pub const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;

/// A hash of `step` bits per coordinate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HashBits {
    pub bits: u64,
    pub step: u8,
}

impl HashBits {
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// A decoded cell.
#[derive(Clone, Copy, Debug, Default)]
pub struct Area {
    pub longitude: Range,
    pub latitude: Range,
}

/// A search shape: a circle (radius) or an axis-aligned box (width, height), both in
/// `unit` multiples (`conversion` meters each), centered at `xy` (longitude, latitude),
/// or a polygon (vertices as (longitude, latitude), centered at its centroid).
#[derive(Clone, Debug)]
pub enum ShapeKind {
    Circle { radius: f64 },
    Box { width: f64, height: f64 },
    Polygon { vertices: Vec<[f64; 2]> },
}

#[derive(Clone, Debug)]
pub struct Shape {
    pub xy: [f64; 2],
    pub conversion: f64,
    pub kind: ShapeKind,
}

#[inline]
fn deg_rad(a: f64) -> f64 {
    a * D_R
}

#[inline]
fn rad_deg(a: f64) -> f64 {
    a / D_R
}

/// Spreads the low 32 bits of `v` to the even bit positions.
#[inline]
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bit positions of `v` into the low 32 bits.
#[inline]
fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Latitude bits at the even positions, longitude bits at the odd ones.
#[inline]
fn interleave(lat: u32, lon: u32) -> u64 {
    spread(lat) | (spread(lon) << 1)
}

/// Encodes a point within the given ranges; None outside the limits or ranges.
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    if step == 0 || step > 32 {
        return None;
    }
    if (lat_r.min == 0.0 && lat_r.max == 0.0) || (lon_r.min == 0.0 && lon_r.max == 0.0) {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min) * scale;
    let lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min) * scale;
    // C converts the doubles to uint32_t by truncation; `as` saturates, the same for
    // the in-range values seen here.
    Some(HashBits {
        bits: interleave(lat_off as u32, lon_off as u32),
        step,
    })
}

/// The WGS84 (Mercator-limited) ranges.
pub fn coord_ranges() -> (Range, Range) {
    (
        Range {
            min: LONG_MIN,
            max: LONG_MAX,
        },
        Range {
            min: LAT_MIN,
            max: LAT_MAX,
        },
    )
}

pub fn encode_wgs84(lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    let (lo, la) = coord_ranges();
    encode(lo, la, lon, lat, step)
}

/// Decodes a hash to its cell; None for the zero hash.
pub fn decode(lon_r: Range, lat_r: Range, h: HashBits) -> Option<Area> {
    if h.is_zero()
        || (lat_r.min == 0.0 && lat_r.max == 0.0)
        || (lon_r.min == 0.0 && lon_r.max == 0.0)
    {
        return None;
    }
    let step = h.step.min(63);
    let ilat = squash(h.bits);
    let ilon = squash(h.bits >> 1);
    let div = (1u64 << step) as f64;
    let lat_scale = lat_r.max - lat_r.min;
    let lon_scale = lon_r.max - lon_r.min;
    Some(Area {
        latitude: Range {
            min: lat_r.min + (ilat as f64 * 1.0 / div) * lat_scale,
            max: lat_r.min + ((ilat as f64 + 1.0) * 1.0 / div) * lat_scale,
        },
        longitude: Range {
            min: lon_r.min + (ilon as f64 * 1.0 / div) * lon_scale,
            max: lon_r.min + ((ilon as f64 + 1.0) * 1.0 / div) * lon_scale,
        },
    })
}

/// The center of a decoded cell, clamped to the limits.
fn area_center(a: &Area) -> [f64; 2] {
    let lon = ((a.longitude.min + a.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.latitude.min + a.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    [lon, lat]
}

/// x86-64 `cvttsd2si`: truncation, the "integer indefinite" value when out of range.
#[inline]
pub fn c_double_to_i64(x: f64) -> i64 {
    const LIM: f64 = 9_223_372_036_854_775_808.0;
    if x.is_nan() || !(-LIM..LIM).contains(&x) {
        i64::MIN
    } else {
        x as i64
    }
}

/// C's `(uint64_t)` conversion of a double as gcc compiles it on x86-64 (negative values
/// wrap, huge ones give the indefinite value), for scores that are not geohashes.
#[inline]
fn c_double_to_u64(x: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if x < TWO63 {
        c_double_to_i64(x) as u64
    } else {
        (c_double_to_i64(x - TWO63) as u64) ^ (1u64 << 63)
    }
}

/// `decodeGeohash`: a zset score to (longitude, latitude).
pub fn decode_score(score: f64) -> Option<[f64; 2]> {
    let bits = c_double_to_u64(score);
    let (lo, la) = coord_ranges();
    decode(
        lo,
        la,
        HashBits {
            bits,
            step: STEP_MAX,
        },
    )
    .map(|a| area_center(&a))
}

/// The 52-bit score of a hash.
pub fn align52(h: HashBits) -> u64 {
    let sh = 52u32.saturating_sub(h.step as u32 * 2);
    h.bits.checked_shl(sh).unwrap_or(0)
}

fn move_x(h: &mut HashBits, d: i8) {
    if d == 0 || h.step == 0 {
        return;
    }
    let sh = 64 - h.step as u32 * 2;
    let mut x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> sh;
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaa_aaaa_aaaa_aaaau64 >> sh;
    h.bits = x | y;
}

fn move_y(h: &mut HashBits, d: i8) {
    if d == 0 || h.step == 0 {
        return;
    }
    let sh = 64 - h.step as u32 * 2;
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let mut y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> sh;
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555_5555_5555_5555u64 >> sh;
    h.bits = x | y;
}

fn moved(h: HashBits, dx: i8, dy: i8) -> HashBits {
    let mut n = h;
    move_x(&mut n, dx);
    move_y(&mut n, dy);
    n
}

/// `geohashEstimateStepsByRadius`.
pub fn estimate_steps(range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut r = range_meters;
    let mut step: i32 = 1;
    while r < MERCATOR_MAX {
        r *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// A polygon's bounding box [min_lon, min_lat, max_lon, max_lat] and the centroid of its
/// vertices (the direction of the sum of their unit vectors), as the reference
/// computes them.
pub fn polygon_bounds(vertices: &[[f64; 2]]) -> ([f64; 4], [f64; 2]) {
    let (mut min_lon, mut max_lon) = (LONG_MAX, LONG_MIN);
    let (mut min_lat, mut max_lat) = (LAT_MAX, LAT_MIN);
    // The direction of the sum of the vertices' unit vectors (not divided by their
    // count: the reference's digits depend on it).
    let (mut x, mut y, mut z) = (0.0f64, 0.0f64, 0.0f64);
    for &[lon, lat] in vertices {
        if lon < min_lon {
            min_lon = lon;
        }
        if lon > max_lon {
            max_lon = lon;
        }
        if lat < min_lat {
            min_lat = lat;
        }
        if lat > max_lat {
            max_lat = lat;
        }
        let (lonr, latr) = (deg_rad(lon), deg_rad(lat));
        x += latr.cos() * lonr.cos();
        y += latr.cos() * lonr.sin();
        z += latr.sin();
    }
    let clon = y.atan2(x);
    let hyp = (x * x + y * y).sqrt();
    let clat = z.atan2(hyp);
    (
        [min_lon, min_lat, max_lon, max_lat],
        [rad_deg(clon), rad_deg(clat)],
    )
}

/// The search area's bounding box: [min_lon, min_lat, max_lon, max_lat].
fn bounding_box(s: &Shape) -> [f64; 4] {
    let (height, width) = match &s.kind {
        ShapeKind::Circle { radius } => (s.conversion * radius, s.conversion * radius),
        ShapeKind::Box { width, height } => {
            (s.conversion * height / 2.0, s.conversion * width / 2.0)
        }
        ShapeKind::Polygon { vertices } => return polygon_bounds(vertices).0,
    };
    let [lon, lat] = s.xy;
    let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
    let long_delta_top = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat + lat_delta).cos());
    let long_delta_bottom =
        rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(lat - lat_delta).cos());
    let south = lat < 0.0;
    let d = if south {
        long_delta_bottom
    } else {
        long_delta_top
    };
    [lon - d, lat - lat_delta, lon + d, lat + lat_delta]
}

/// The cells to scan for a shape: the center cell and its 8 neighbours in upstream's
/// order (self, N, S, E, W, NE, NW, SE, SW); useless ones are zeroed.
pub fn search_cells(s: &Shape) -> [HashBits; 9] {
    let [min_lon, min_lat, max_lon, max_lat] = bounding_box(s);
    let [lon, lat] = s.xy;
    let radius_m = match &s.kind {
        ShapeKind::Circle { radius } => *radius,
        ShapeKind::Box { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
        ShapeKind::Polygon { .. } => {
            let corners = [
                distance(lon, lat, min_lon, max_lat),
                distance(lon, lat, max_lon, max_lat),
                distance(lon, lat, min_lon, min_lat),
                distance(lon, lat, max_lon, min_lat),
            ];
            let mut r = corners[0];
            for &d in &corners[1..] {
                if d > r {
                    r = d;
                }
            }
            r
        }
    } * s.conversion;
    let mut steps = estimate_steps(radius_m, lat);
    let (lo_r, la_r) = coord_ranges();
    let cells = |steps: u8| -> (HashBits, [HashBits; 8], Area) {
        let h = encode(lo_r, la_r, lon, lat, steps).unwrap_or(HashBits {
            bits: 0,
            step: steps,
        });
        let n = [
            moved(h, 0, 1),   // north
            moved(h, 0, -1),  // south
            moved(h, 1, 0),   // east
            moved(h, -1, 0),  // west
            moved(h, 1, 1),   // north east
            moved(h, -1, 1),  // north west
            moved(h, 1, -1),  // south east
            moved(h, -1, -1), // south west
        ];
        let a = decode(lo_r, la_r, h).unwrap_or_default();
        (h, n, a)
    };
    let (mut h, mut n, mut area) = cells(steps);
    let dec = |x: HashBits| decode(lo_r, la_r, x).unwrap_or_default();
    let decrease = dec(n[0]).latitude.max < max_lat
        || dec(n[1]).latitude.min > min_lat
        || dec(n[2]).longitude.max < max_lon
        || dec(n[3]).longitude.min > min_lon;
    if steps > 1 && decrease {
        steps -= 1;
        (h, n, area) = cells(steps);
    }
    let zero = HashBits::default();
    if steps >= 2 {
        if area.latitude.min < min_lat {
            n[1] = zero;
            n[7] = zero;
            n[6] = zero;
        }
        if area.latitude.max > max_lat {
            n[0] = zero;
            n[4] = zero;
            n[5] = zero;
        }
        if area.longitude.min < min_lon {
            n[3] = zero;
            n[7] = zero;
            n[5] = zero;
        }
        if area.longitude.max > max_lon {
            n[2] = zero;
            n[6] = zero;
            n[4] = zero;
        }
    }
    [h, n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]]
}

/// The [min, max) score range of the points inside a cell.
pub fn cell_scores(h: HashBits) -> (f64, f64) {
    let min = align52(h);
    let max = align52(HashBits {
        bits: h.bits.wrapping_add(1),
        step: h.step,
    });
    (min as f64, max as f64)
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine distance in meters.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// `geoWithinShape`: the point's distance from the center when it is inside.
pub fn within(s: &Shape, lon: f64, lat: f64) -> Option<f64> {
    let [cx, cy] = s.xy;
    match &s.kind {
        ShapeKind::Circle { radius } => {
            let d = distance(cx, cy, lon, lat);
            (d <= radius * s.conversion).then_some(d)
        }
        ShapeKind::Polygon { vertices } => {
            let n = vertices.len();
            let mut inside = false;
            let mut j = n.wrapping_sub(1);
            for i in 0..n {
                let (a, b) = (vertices[i], vertices[j]);
                if ((a[1] > lat) != (b[1] > lat))
                    && (lon < (b[0] - a[0]) * (lat - a[1]) / (b[1] - a[1]) + a[0])
                {
                    inside = !inside;
                }
                j = i;
            }
            inside.then(|| distance(cx, cy, lon, lat))
        }
        ShapeKind::Box { width, height } => {
            let (w, h) = (width * s.conversion, height * s.conversion);
            if lat_distance(lat, cy) > h / 2.0 {
                return None;
            }
            if distance(lon, lat, cx, lat) > w / 2.0 {
                return None;
            }
            Some(distance(cx, cy, lon, lat))
        }
    }
}

/// The 11-character standard geohash of a stored score (re-encoded over +-90 latitude).
pub fn standard_hash_string(score: f64) -> Option<[u8; 11]> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let [lon, lat] = decode_score(score)?;
    let h = encode(
        Range {
            min: -180.0,
            max: 180.0,
        },
        Range {
            min: -90.0,
            max: 90.0,
        },
        lon,
        lat,
        26,
    )
    .unwrap_or_default();
    let mut out = [b'0'; 11];
    for (i, o) in out.iter_mut().enumerate().take(10) {
        let idx = (h.bits >> (52 - (i + 1) * 5)) & 0x1f;
        *o = ALPHABET[idx as usize];
    }
    Some(out)
}

/// Upstream's `fixedpoint_d2string(.., 4)`: `%.4f`-like with llrint rounding.
pub fn fmt_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".to_string();
    }
    let v = (d * 10000.0).round_ties_even();
    let sv = if v >= i64::MAX as f64 {
        i64::MAX
    } else if v <= i64::MIN as f64 {
        i64::MIN
    } else {
        v as i64
    };
    let neg = sv < 0;
    let u = sv.unsigned_abs();
    let ip = u / 10000;
    let fp = u % 10000;
    format!("{}{}.{:04}", if neg { "-" } else { "" }, ip, fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_roundtrip() {
        for &(a, b) in &[(0u32, 0u32), (1, 2), (0x3ffffff, 0x1234567), (u32::MAX, 7)] {
            let v = interleave(a, b);
            assert_eq!(squash(v), a);
            assert_eq!(squash(v >> 1), b);
        }
    }

    #[test]
    fn known_score() {
        // GEOADD Sicily 13.361389 38.115556 Palermo -> score 3479099956230698.
        let h = encode_wgs84(13.361389, 38.115556, STEP_MAX).unwrap();
        assert_eq!(align52(h), 3479099956230698);
        assert_eq!(
            &standard_hash_string(3479099956230698.0).unwrap(),
            b"sqc8b49rny0"
        );
    }

    #[test]
    fn distance_fmt() {
        assert_eq!(fmt_distance(0.0), "0.0000");
        assert_eq!(fmt_distance(166274.15156960033), "166274.1516");
        assert_eq!(fmt_distance(0.00004), "0.0000");
        assert_eq!(fmt_distance(0.5), "0.5000");
    }
}
