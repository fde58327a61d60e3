//! The smallest H.264 stream a browser plays: Constrained Baseline, CAVLC, one IDR picture of
//! flat mid-gray followed by P pictures that repeat it.
//!
//! Every syntax element below is written as ITU-T H.264 (08/2021) lays it out; section
//! numbers refer to that edition. The scheme needs no transform, quantiser or entropy tables:
//!
//! - The IDR picture codes every macroblock as `I_16x16` with DC prediction, no coded
//!   residual and `mb_qp_delta` 0. DC prediction with no neighbour available predicts
//!   `1 << (BitDepth − 1)` = 128 (§ 8.3.3.4, § 8.3.4.3), and every later macroblock predicts
//!   from 128-valued neighbours, so the whole picture decodes to Y = Cb = Cr = 128.
//! - Each P picture is one slice of skipped macroblocks. A skipped macroblock with no coded
//!   neighbour has a zero motion vector (§ 8.4.1.1), so it copies the previous picture.
//!
//! The stream is cut into NAL units without start codes: the MP4 writer prefixes each with
//! its length (AVCC), and the SPS and PPS go into the `avcC` box.

use super::bits::BitWriter;

/// `profile_idc` 66: Baseline.
const PROFILE_BASELINE: u8 = 66;
/// `constraint_set0_flag` and `constraint_set1_flag`: together with Baseline they make
/// Constrained Baseline (§ A.2.1.1), the profile every hardware and software decoder takes.
const CONSTRAINT_FLAGS: u8 = 0b1100_0000;
/// `frame_num` is written in this many bits (`log2_max_frame_num_minus4` + 4). 16 bits
/// count 65 536 pictures, far more than a clip holds, so it never wraps.
const FRAME_NUM_BITS: u32 = 16;

/// `nal_unit_type` values (Table 7-1) with the `nal_ref_idc` each is sent with, as one
/// header byte: `forbidden_zero_bit` (0), `nal_ref_idc` (2 bits), `nal_unit_type` (5 bits).
const NAL_SPS: u8 = 0x67; // ref_idc 3, type 7
const NAL_PPS: u8 = 0x68; // ref_idc 3, type 8
const NAL_IDR: u8 = 0x65; // ref_idc 3, type 5: an IDR slice
const NAL_P: u8 = 0x41; // ref_idc 2, type 1: a reference non-IDR slice

/// `slice_type` 7 and 5: I and P, with the "every slice of the picture has this type" offset.
const SLICE_I: u32 = 7;
const SLICE_P: u32 = 5;

/// Levels (Table A-1) as (largest frame in macroblocks, `level_idc`), smallest first. Clips
/// run at a few dozen frames per second, far under every level's macroblock rate, so the
/// frame size alone decides.
const LEVELS: [(u32, u8); 5] = [
    (3_600, 31),   // 1280×720
    (8_192, 40),   // 1920×1088
    (22_080, 50),  // 2560×1920
    (36_864, 51),  // 4096×2304
    (139_264, 60), // 8192×4352
];

/// The geometry of one stream: the picture in whole macroblocks and the crop that trims it to
/// the display size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Picture {
    /// Width in 16-pixel macroblocks.
    mbs_wide: u32,
    /// Height in 16-pixel macroblocks.
    mbs_high: u32,
    /// Pixels cropped off the right edge (even: 4:2:0 crops in units of 2, § 7.4.2.1.1).
    crop_right: u32,
    /// Pixels cropped off the bottom edge (even, likewise).
    crop_bottom: u32,
}

impl Picture {
    /// The coded picture for a `width` × `height` display size, both even and at least 2.
    pub fn new(width: u32, height: u32) -> Self {
        let mbs_wide = width.div_ceil(16);
        let mbs_high = height.div_ceil(16);
        Self {
            mbs_wide,
            mbs_high,
            crop_right: mbs_wide * 16 - width,
            crop_bottom: mbs_high * 16 - height,
        }
    }

    fn macroblocks(self) -> u32 {
        self.mbs_wide * self.mbs_high
    }

    fn level_idc(self) -> u8 {
        let size = self.macroblocks();
        LEVELS
            .iter()
            .find(|(max, _)| size <= *max)
            .map_or(LEVELS[LEVELS.len() - 1].1, |&(_, level)| level)
    }

    /// The sequence parameter set NAL unit (§ 7.3.2.1.1).
    pub fn sps(self) -> Vec<u8> {
        let mut w = BitWriter::new();
        w.bits(8, PROFILE_BASELINE.into());
        w.bits(8, CONSTRAINT_FLAGS.into()); // constraint_set0..5 flags + reserved_zero_2bits
        w.bits(8, self.level_idc().into());
        w.ue(0); // seq_parameter_set_id
        // Baseline has no chroma_format_idc: 4:2:0, 8 bits, is implied.
        w.ue(FRAME_NUM_BITS - 4); // log2_max_frame_num_minus4
        // Type 2: picture order follows frame_num, right for a stream with no B pictures and
        // nothing to signal per slice (§ 8.2.1.3).
        w.ue(2); // pic_order_cnt_type
        w.ue(1); // max_num_ref_frames: each P picture refers to the one before
        w.bit(false); // gaps_in_frame_num_value_allowed_flag
        w.ue(self.mbs_wide - 1); // pic_width_in_mbs_minus1
        w.ue(self.mbs_high - 1); // pic_height_in_map_units_minus1
        w.bit(true); // frame_mbs_only_flag: progressive frames only
        w.bit(true); // direct_8x8_inference_flag
        let cropped = self.crop_right > 0 || self.crop_bottom > 0;
        w.bit(cropped); // frame_cropping_flag
        if cropped {
            // Offsets count in CropUnitX = CropUnitY = 2 for 4:2:0 progressive (Eq. 7-19, 7-20).
            w.ue(0); // frame_crop_left_offset
            w.ue(self.crop_right / 2); // frame_crop_right_offset
            w.ue(0); // frame_crop_top_offset
            w.ue(self.crop_bottom / 2); // frame_crop_bottom_offset
        }
        w.bit(false); // vui_parameters_present_flag: the container carries the timing
        w.rbsp_trailing_bits();
        nal_unit(NAL_SPS, &w.into_bytes())
    }

    /// The picture parameter set NAL unit (§ 7.3.2.2).
    pub fn pps(self) -> Vec<u8> {
        let mut w = BitWriter::new();
        w.ue(0); // pic_parameter_set_id
        w.ue(0); // seq_parameter_set_id
        w.bit(false); // entropy_coding_mode_flag: CAVLC
        w.bit(false); // bottom_field_pic_order_in_frame_present_flag
        w.ue(0); // num_slice_groups_minus1
        w.ue(0); // num_ref_idx_l0_default_active_minus1
        w.ue(0); // num_ref_idx_l1_default_active_minus1
        w.bit(false); // weighted_pred_flag
        w.bits(2, 0); // weighted_bipred_idc
        w.se(0); // pic_init_qp_minus26
        w.se(0); // pic_init_qs_minus26
        w.se(0); // chroma_qp_index_offset
        // Present so that slices can switch the deblocking filter off: a flat picture has no
        // edges to smooth, and off is the cheapest thing for a decoder to do.
        w.bit(true); // deblocking_filter_control_present_flag
        w.bit(false); // constrained_intra_pred_flag
        w.bit(false); // redundant_pic_cnt_present_flag
        w.rbsp_trailing_bits();
        nal_unit(NAL_PPS, &w.into_bytes())
    }

    /// The IDR picture: one I slice of `I_16x16` DC-predicted macroblocks with no residual.
    pub fn idr(self) -> Vec<u8> {
        let mut w = BitWriter::new();
        slice_header(&mut w, SLICE_I, 0);
        // slice_data() (§ 7.3.4): an I slice has no mb_skip_run, just the macroblocks.
        for _ in 0..self.macroblocks() {
            // mb_type 3 is I_16x16_2_0_0 (Table 7-11): Intra16x16PredMode 2 (DC),
            // CodedBlockPatternChroma 0, CodedBlockPatternLuma 0.
            w.ue(3);
            w.ue(0); // intra_chroma_pred_mode: DC
            w.se(0); // mb_qp_delta (always present for I_16x16)
            // residual(): the Intra16x16DCLevel block is always coded; with every neighbour
            // empty nC = 0, and coeff_token for TotalCoeff = 0, TrailingOnes = 0 at
            // 0 <= nC < 2 is the single bit `1` (Table 9-5). CodedBlockPattern 0 codes
            // nothing else.
            w.bit(true);
        }
        w.rbsp_trailing_bits();
        nal_unit(NAL_IDR, &w.into_bytes())
    }

    /// A P picture that skips every macroblock: a copy of the picture before it.
    /// `frame_num` counts reference pictures since the IDR (which is 0).
    pub fn skipped(self, frame_num: u32) -> Vec<u8> {
        let mut w = BitWriter::new();
        slice_header(&mut w, SLICE_P, frame_num);
        // slice_data() with CAVLC: one mb_skip_run covering the picture, after which
        // more_rbsp_data() is false and the slice ends.
        w.ue(self.macroblocks()); // mb_skip_run
        w.rbsp_trailing_bits();
        nal_unit(NAL_P, &w.into_bytes())
    }
}

/// `slice_header()` (§ 7.3.3) for the only two kinds of slice written here: the IDR's
/// (`frame_num` 0) and a reference P slice's.
fn slice_header(w: &mut BitWriter, slice_type: u32, frame_num: u32) {
    let idr = slice_type == SLICE_I;
    w.ue(0); // first_mb_in_slice: one slice per picture
    w.ue(slice_type);
    w.ue(0); // pic_parameter_set_id
    w.bits(FRAME_NUM_BITS, frame_num.into()); // frame_num, wrapped by MaxFrameNum
    if idr {
        w.ue(0); // idr_pic_id: the stream has one IDR picture
    }
    // pic_order_cnt_type 2 sends nothing for the picture order count.
    if slice_type == SLICE_P {
        w.bit(false); // num_ref_idx_active_override_flag: one reference, the PPS default
        w.bit(false); // ref_pic_list_modification_flag_l0
    }
    // dec_ref_pic_marking() (§ 7.3.3.3), as nal_ref_idc is not 0.
    if idr {
        w.bit(false); // no_output_of_prior_pics_flag
        w.bit(false); // long_term_reference_flag
    } else {
        w.bit(false); // adaptive_ref_pic_marking_mode_flag: sliding window
    }
    w.se(0); // slice_qp_delta: QP 26, unused as nothing is quantised
    w.ue(1); // disable_deblocking_filter_idc: off
}

/// A NAL unit: the header byte, then the RBSP with emulation prevention (§ 7.4.1): wherever
/// two zero bytes would be followed by a byte of 0–3, an `0x03` goes between them, so no
/// start code (`00 00 01`) can appear inside the payload.
fn nal_unit(header: u8, rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 1);
    out.push(header);
    let mut zeros = 0;
    for &byte in rbsp {
        if zeros >= 2 && byte <= 3 {
            out.push(0x03);
            zeros = 0;
        }
        out.push(byte);
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back what [`BitWriter`] wrote, for checking headers field by field.
    struct BitReader<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl BitReader<'_> {
        fn bit(&mut self) -> u32 {
            let bit = (self.bytes[self.pos / 8] >> (7 - self.pos % 8)) & 1;
            self.pos += 1;
            bit.into()
        }
        fn bits(&mut self, n: u32) -> u32 {
            (0..n).fold(0, |acc, _| (acc << 1) | self.bit())
        }
        fn ue(&mut self) -> u32 {
            let mut zeros = 0;
            while self.bit() == 0 {
                zeros += 1;
            }
            (1 << zeros) - 1 + self.bits(zeros)
        }
    }

    /// Undoes emulation prevention.
    fn rbsp(nal: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = 0;
        for &b in &nal[1..] {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        out
    }

    #[test]
    fn emulation_prevention_breaks_every_start_code() {
        assert_eq!(
            nal_unit(0x65, &[0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 0, 4]),
            [0x65, 0, 0, 3, 1, 0, 0, 3, 0, 0, 3, 0, 3, 0, 0, 4]
        );
        let nal = nal_unit(0x41, &[0, 0, 0, 0, 2, 0xff]);
        assert_eq!(rbsp(&nal), [0, 0, 0, 0, 2, 0xff], "round trip");
    }

    #[test]
    fn sps_describes_the_picture_and_its_crop() {
        let picture = Picture::new(1080, 1920);
        let sps = picture.sps();
        assert_eq!(sps[..4], [NAL_SPS, 66, 0xC0, 40]);
        let body = rbsp(&sps);
        let mut r = BitReader {
            bytes: &body,
            pos: 24,
        };
        assert_eq!(r.ue(), 0, "sps id");
        assert_eq!(r.ue() + 4, FRAME_NUM_BITS);
        assert_eq!(r.ue(), 2, "poc type");
        assert_eq!(r.ue(), 1, "refs");
        assert_eq!(r.bit(), 0);
        assert_eq!(r.ue() + 1, 68, "1080 wide needs 68 macroblocks");
        assert_eq!(r.ue() + 1, 120);
        assert_eq!((r.bit(), r.bit()), (1, 1));
        assert_eq!(r.bit(), 1, "cropped");
        assert_eq!(
            [r.ue(), r.ue(), r.ue(), r.ue()],
            [0, 4, 0, 0],
            "8 columns off"
        );
        assert_eq!(r.bit(), 0, "no VUI");
        assert_eq!(r.bit(), 1, "stop bit");

        let uncropped = Picture::new(1280, 720);
        assert_eq!(uncropped.level_idc(), 31);
        assert_eq!(uncropped.crop_right + uncropped.crop_bottom, 0);
        assert_eq!(Picture::new(4096, 4096).level_idc(), 60);
    }

    #[test]
    fn idr_codes_each_macroblock_in_one_byte() {
        let picture = Picture::new(32, 32);
        let idr = picture.idr();
        assert_eq!(idr[0], NAL_IDR);
        // After the slice header, the four macroblocks are 00100 1 1 1 = 0x27 each, however
        // the header's bits shift them; check the whole body bit by bit instead.
        let body = rbsp(&idr);
        let mut r = BitReader {
            bytes: &body,
            pos: 0,
        };
        assert_eq!([r.ue(), r.ue(), r.ue()], [0, SLICE_I, 0]);
        assert_eq!(r.bits(FRAME_NUM_BITS), 0);
        assert_eq!(r.ue(), 0, "idr_pic_id");
        assert_eq!((r.bit(), r.bit()), (0, 0), "ref pic marking");
        assert_eq!(
            (r.ue(), r.ue()),
            (0, 1),
            "qp delta 0 (se 0), deblocking off"
        );
        for _ in 0..4 {
            assert_eq!(r.bits(8), 0b0010_0111);
        }
        assert_eq!(r.bit(), 1, "stop bit");
        assert!(body.len() * 8 - r.pos < 8, "then only padding");
    }

    #[test]
    fn skipped_pictures_carry_their_frame_number() {
        let picture = Picture::new(1920, 1080);
        let p = picture.skipped(300);
        assert_eq!(p[0], NAL_P);
        let body = rbsp(&p);
        let mut r = BitReader {
            bytes: &body,
            pos: 0,
        };
        assert_eq!([r.ue(), r.ue(), r.ue()], [0, SLICE_P, 0]);
        assert_eq!(r.bits(FRAME_NUM_BITS), 300);
        assert_eq!([r.bit(), r.bit(), r.bit()], [0, 0, 0]);
        assert_eq!((r.ue(), r.ue()), (0, 1));
        assert_eq!(r.ue(), 120 * 68, "mb_skip_run covers the picture");
        assert_eq!(r.bit(), 1, "stop bit");
        assert!(p.len() < 16, "{} bytes", p.len());
    }
}
