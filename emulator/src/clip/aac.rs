//! Silent AAC-LC audio: one constant raw frame, repeated, and the `AudioSpecificConfig` that
//! tells a decoder what it is.

use super::bits::BitWriter;

/// The sample rate of every clip's sound, in Hz: the usual rate for video.
pub(super) const SAMPLE_RATE: u32 = 48_000;
/// Mono: a silent track gains nothing from a second channel.
pub(super) const CHANNELS: u16 = 1;
/// PCM samples each AAC-LC frame decodes to (ISO/IEC 14496-3, `frameLengthFlag` 0).
pub(super) const SAMPLES_PER_FRAME: u32 = 1024;

/// One raw (no ADTS header) AAC-LC frame of mono silence.
///
/// The bytes are hls.js's silent frame for one channel of `mp4a.40.2` (`getSilentFrame` in
/// `src/remux/aac-helper.ts`), which browsers have played in countless HLS streams; decoded
/// against ISO/IEC 14496-3 § 4.4.2 they are:
///
/// ```text
/// 000 0000        id_syn_ele SCE, element_instance_tag 0
/// 01100100        global_gain 100
/// 0 00 0 000001 0 ics_info: reserved, ONLY_LONG_SEQUENCE, sine window, max_sfb 1,
///                 no predictor
/// 0000 00001      section_data: one section of codebook 0 (ZERO_HCB) over band 0
///                 scale_factor_data: nothing is sent for a ZERO_HCB band
/// 0 0 0           no pulse, TNS or gain-control data; ZERO_HCB has no spectral data
/// 111             id_syn_ele END
/// 0000000         byte alignment
/// ```
///
/// Every spectral coefficient is zero, so the frame decodes to 1024 samples of silence
/// whatever the gain.
pub(super) const SILENT_FRAME: [u8; 6] = [0x00, 0xc8, 0x00, 0x80, 0x23, 0x80];

/// The two-byte `AudioSpecificConfig` (ISO/IEC 14496-3 § 1.6.2.1) for AAC-LC at
/// [`SAMPLE_RATE`] with [`CHANNELS`]: `0x11 0x88`.
pub(super) fn audio_specific_config() -> Vec<u8> {
    let mut w = BitWriter::new();
    w.bits(5, 2); // audioObjectType: AAC LC
    w.bits(4, sampling_frequency_index(SAMPLE_RATE).into());
    w.bits(4, CHANNELS.into()); // channelConfiguration: 1 is mono, 2 stereo
    // GASpecificConfig (§ 4.4.1): 1024-sample frames, no core coder, no extension.
    w.bit(false); // frameLengthFlag
    w.bit(false); // dependsOnCoreCoder
    w.bit(false); // extensionFlag
    w.into_bytes()
}

/// The index of `rate` in the standard's sampling-frequency table (§ 1.6.3.3).
fn sampling_frequency_index(rate: u32) -> u8 {
    const RATES: [u32; 13] = [
        96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025,
        8_000, 7_350,
    ];
    RATES
        .iter()
        .position(|&r| r == rate)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_aac_lc_48k_mono() {
        assert_eq!(audio_specific_config(), [0x11, 0x88]);
        assert_eq!(sampling_frequency_index(44_100), 4);
    }

    #[test]
    fn silent_frame_reads_as_documented() {
        let bits: String = SILENT_FRAME.iter().map(|b| format!("{b:08b}")).collect();
        let fields = [
            "000",      // SCE
            "0000",     // tag
            "01100100", // global_gain
            "0",        // ics_reserved_bit
            "00",       // ONLY_LONG_SEQUENCE
            "0",        // window_shape
            "000001",   // max_sfb
            "0",        // predictor_data_present
            "0000",     // sect_cb ZERO_HCB
            "00001",    // sect_len 1
            "000",      // pulse, tns, gain control
            "111",      // END
            "0000000",  // alignment
        ];
        assert_eq!(bits, fields.concat());
    }
}
