//! A most-significant-bit-first bit writer with the H.264 spec's descriptors: `u(n)`,
//! Exp-Golomb `ue(v)` / `se(v)` (ITU-T H.264 § 9.1) and the RBSP trailing bits (§ 7.3.2.11).

/// Bits written MSB first into whole bytes, the way every H.264 and AAC syntax element is laid
/// out.
#[derive(Debug, Default)]
pub(super) struct BitWriter {
    bytes: Vec<u8>,
    /// The byte being filled, its bits left-aligned as they arrive.
    current: u8,
    /// How many bits of `current` are used (0..8).
    used: u8,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// One bit, `u(1)`.
    pub fn bit(&mut self, set: bool) {
        self.current |= u8::from(set) << (7 - self.used);
        self.used += 1;
        if self.used == 8 {
            self.bytes.push(self.current);
            self.current = 0;
            self.used = 0;
        }
    }

    /// The low `count` bits of `value`, most significant first: `u(n)` for `count` up to 64.
    pub fn bits(&mut self, count: u32, value: u64) {
        for shift in (0..count.min(64)).rev() {
            self.bit((value >> shift) & 1 == 1);
        }
    }

    /// Unsigned Exp-Golomb, `ue(v)`: `n` zeros, then `value + 1` in `n + 1` bits.
    pub fn ue(&mut self, value: u32) {
        // In u64 so that u32::MAX + 1 does not overflow.
        let coded = u64::from(value) + 1;
        let width = 64 - coded.leading_zeros();
        self.bits(width - 1, 0);
        self.bits(width, coded);
    }

    /// Signed Exp-Golomb, `se(v)`: positive `k` maps to `2k − 1`, zero and negative `k` to
    /// `−2k` (§ 9.1.1, Table 9-3).
    pub fn se(&mut self, value: i32) {
        let magnitude = value.unsigned_abs();
        let mapped = if value > 0 {
            magnitude.saturating_mul(2) - 1
        } else {
            magnitude.saturating_mul(2)
        };
        self.ue(mapped);
    }

    /// `rbsp_trailing_bits()`: a stop bit `1`, then zeros up to the byte boundary. Ends every
    /// SPS, PPS and slice, and guarantees the last byte is not zero.
    pub fn rbsp_trailing_bits(&mut self) {
        self.bit(true);
        self.align_with_zeros();
    }

    /// Zeros up to the next byte boundary (nothing when already aligned).
    pub fn align_with_zeros(&mut self) {
        while self.used != 0 {
            self.bit(false);
        }
    }

    /// The bytes written, the last partial byte padded with zeros.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.align_with_zeros();
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut BitWriter)) -> String {
        let mut w = BitWriter::new();
        f(&mut w);
        let used = w.used;
        let bytes = w.into_bytes();
        let text: String = bytes.iter().map(|b| format!("{b:08b}")).collect();
        // Only the bits actually written, not the padding.
        let len = if used == 0 {
            text.len()
        } else {
            text.len() - 8 + used as usize
        };
        text[..len].to_owned()
    }

    #[test]
    fn exp_golomb_matches_the_spec_table() {
        // H.264 Table 9-2's bit strings.
        let table = [
            (0, "1"),
            (1, "010"),
            (2, "011"),
            (3, "00100"),
            (4, "00101"),
            (7, "0001000"),
            (8, "0001001"),
        ];
        for (value, bits) in table {
            assert_eq!(written(|w| w.ue(value)), bits, "ue({value})");
        }
        assert_eq!(written(|w| w.ue(u32::MAX)).len(), 65);
        // Table 9-3: 0, 1, −1, 2, −2 are code numbers 0..4.
        for (value, code) in [(0, 0), (1, 1), (-1, 2), (2, 3), (-2, 4)] {
            assert_eq!(
                written(|w| w.se(value)),
                written(|w| w.ue(code)),
                "se({value})"
            );
        }
        assert_eq!(written(|w| w.se(i32::MIN)).len(), 65, "saturates, no panic");
    }

    #[test]
    fn fixed_width_fields_and_trailing_bits() {
        assert_eq!(written(|w| w.bits(4, 0b1010)), "1010");
        let mut w = BitWriter::new();
        w.bits(3, 0b101);
        w.rbsp_trailing_bits();
        assert_eq!(w.into_bytes(), [0b1011_0000]);
        let mut w = BitWriter::new();
        w.bits(8, 0x42);
        w.rbsp_trailing_bits();
        assert_eq!(
            w.into_bytes(),
            [0x42, 0x80],
            "aligned: a whole byte of trailer"
        );
    }
}
