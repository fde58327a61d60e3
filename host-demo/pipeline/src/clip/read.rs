//! Reading an MP4's facts with Mozilla's `mp4parse` (fuzzed, shipped in Firefox), not a parser
//! of our own, within bounds a hostile file cannot stretch.
//!
//! The file comes from the provider's storage (or whatever its URL pointed at), so nothing in
//! it is trusted: it is read through a [`Read::take`] of its own length, never more than
//! [`MAX_CLIP_BYTES`]; `mp4parse` allocates fallibly and caps its buffers; a panic inside it
//! (none is known) is caught and reported as an unreadable file; and the index is checked
//! against the file's real length, which `mp4parse` alone does not do (it skips `mdat`
//! without counting), so a cut-off download reads as truncated.

use super::{Found, Frame};
use mp4parse::{
    AudioCodecSpecific, CodecType, MediaContext, SampleEntry, Track, TrackType, read_mp4,
};
use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// The largest file read: the download's own limit ([`crate::download`]'s
/// `MAX_DOWNLOAD_BYTES`), so nothing downloaded is too large to check.
pub(crate) const MAX_CLIP_BYTES: u64 = crate::download::MAX_DOWNLOAD_BYTES;

/// Read the MP4 at `path`: its length, frame and audio, or a sentence saying why it cannot be
/// read as one. Blocking (it reads the whole file); run it off the async threads.
pub fn inspect(path: &Path) -> Result<Found, String> {
    let file = File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read the file's size: {e}"))?
        .len();
    if len > MAX_CLIP_BYTES {
        return Err(format!(
            "{len} bytes is over the {MAX_CLIP_BYTES}-byte limit"
        ));
    }
    inspect_reader(BufReader::new(file).take(len), len)
}

/// [`inspect`] over any reader of `len` bytes.
pub(crate) fn inspect_reader(mut reader: impl Read, len: u64) -> Result<Found, String> {
    let parsed = catch_unwind(AssertUnwindSafe(|| read_mp4(&mut reader)))
        .map_err(|_| "the MP4 parser gave up on it".to_string())?;
    let context = parsed.map_err(|e| match e {
        mp4parse::Error::MoovMissing => "no movie box (moov): not an MP4".to_string(),
        mp4parse::Error::UnexpectedEOF => format!("truncated: it ends early, after {len} bytes"),
        // A box whose header claims more than the file holds: `mp4parse` reads what there is
        // and finds the box unfinished.
        mp4parse::Error::InvalidData(mp4parse::Status::CheckParserStateErr) => {
            format!("truncated or corrupt: a box runs past the end of the {len}-byte file")
        }
        other => format!("the MP4 parser refused it: {other:?}"),
    })?;
    facts(&context, len)
}

/// The facts of a parsed file whose length is `len`.
fn facts(context: &MediaContext, len: u64) -> Result<Found, String> {
    if context.tracks.is_empty() {
        return Err("it has no tracks".into());
    }
    for track in context.tracks.iter() {
        if let Some(end) = data_end(track)
            && end > len
        {
            return Err(format!(
                "truncated: its index points to byte {end} of a {len}-byte file"
            ));
        }
    }
    let video = context
        .tracks
        .iter()
        .find(|t| t.track_type == TrackType::Video);
    let audio = context
        .tracks
        .iter()
        .find(|t| t.track_type == TrackType::Audio);
    let duration_ms = match video {
        Some(track) => duration_ms(context, track),
        None => context
            .tracks
            .iter()
            .filter_map(|t| duration_ms(context, t))
            .max(),
    };
    Ok(Found {
        duration_ms,
        video: video.and_then(frame),
        audio: audio.map(|t| audio_codec(t).to_string()),
    })
}

/// How long `track` plays, in milliseconds: its edit list's length when it has one (in the
/// movie's timescale), else its media duration in its own timescale.
fn duration_ms(context: &MediaContext, track: &Track) -> Option<u64> {
    let ms = |ticks: u64, per_second: u64| {
        (per_second > 0).then(|| (u128::from(ticks) * 1000 / u128::from(per_second)) as u64)
    };
    if let (Some(edited), Some(scale)) = (track.edited_duration, context.timescale) {
        return ms(edited.0, scale.0);
    }
    match (track.duration, track.timescale) {
        (Some(duration), Some(scale)) => ms(duration.0, scale.0),
        _ => None,
    }
}

/// The video track's displayed frame (its header's 16.16 size), falling back to the sample
/// entry's coded size when the header has none.
fn frame(track: &Track) -> Option<Frame> {
    let entry = track
        .stsd
        .as_ref()?
        .descriptions
        .iter()
        .find_map(|d| match d {
            SampleEntry::Video(v) => Some(v),
            _ => None,
        });
    let (width, height) = match &track.tkhd {
        Some(tkhd) if tkhd.width > 0 && tkhd.height > 0 => (tkhd.width >> 16, tkhd.height >> 16),
        _ => {
            let entry = entry?;
            (u32::from(entry.width), u32::from(entry.height))
        }
    };
    Some(Frame {
        width,
        height,
        codec: entry.map_or("unknown", |e| codec_name(e.codec_type)).into(),
    })
}

fn audio_codec(track: &Track) -> &'static str {
    let entry = track.stsd.as_ref().and_then(|stsd| {
        stsd.descriptions.iter().find_map(|d| match d {
            SampleEntry::Audio(a) => Some(a),
            _ => None,
        })
    });
    match entry {
        Some(a) => match &a.codec_specific {
            AudioCodecSpecific::ES_Descriptor(es) => codec_name(es.audio_codec),
            _ => codec_name(a.codec_type),
        },
        None => "unknown",
    }
}

fn codec_name(codec: CodecType) -> &'static str {
    match codec {
        CodecType::H264 => "h264",
        CodecType::AV1 => "av1",
        CodecType::VP9 => "vp9",
        CodecType::VP8 => "vp8",
        CodecType::MP4V => "mp4v",
        CodecType::H263 => "h263",
        CodecType::AAC => "aac",
        CodecType::Opus => "opus",
        CodecType::MP3 => "mp3",
        CodecType::FLAC => "flac",
        CodecType::ALAC => "alac",
        CodecType::LPCM => "lpcm",
        CodecType::EncryptedVideo | CodecType::EncryptedAudio => "encrypted",
        _ => "unknown",
    }
}

/// Where `track`'s last sample ends in the file, from its chunk offsets (`stco`), the samples
/// per chunk (`stsc`) and their sizes (`stsz`); `None` when the track has no such index (a
/// fragmented file). The work is one step per chunk and per listed sample size — both tables
/// `mp4parse` has already read — so a hostile count cannot make it loop longer.
fn data_end(track: &Track) -> Option<u64> {
    let (stsc, stco, stsz) = (
        track.stsc.as_ref()?,
        track.stco.as_ref()?,
        track.stsz.as_ref()?,
    );
    let mut sizes = stsz.sample_sizes.iter();
    let mut end = 0u64;
    let runs = stsc.samples.as_slice();
    for (i, run) in runs.iter().enumerate() {
        // Chunks are numbered from 1; this run lasts until the next run's first chunk.
        let first = usize::try_from(run.first_chunk).ok()?.checked_sub(1)?;
        let last = match runs.get(i + 1) {
            Some(next) => usize::try_from(next.first_chunk).ok()?.checked_sub(1)?,
            None => stco.offsets.len(),
        };
        for offset in stco.offsets.get(first..last.min(stco.offsets.len()))? {
            let bytes = if stsz.sample_size > 0 {
                u64::from(stsz.sample_size).checked_mul(u64::from(run.samples_per_chunk))?
            } else {
                let mut sum = 0u64;
                for _ in 0..run.samples_per_chunk {
                    let Some(size) = sizes.next() else { break };
                    sum = sum.checked_add(u64::from(*size))?;
                }
                sum
            };
            end = end.max(offset.checked_add(bytes)?);
        }
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use happyhorse_emulator::{ClipFault, ClipSpec};
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    fn clip(width: u32, height: u32, seconds: u64) -> Vec<u8> {
        ClipSpec {
            width,
            height,
            duration: Duration::from_secs(seconds),
            audio: true,
        }
        .render()
    }

    fn read(bytes: &[u8]) -> Result<Found, String> {
        inspect_reader(bytes, bytes.len() as u64)
    }

    #[test]
    fn a_real_clip_reads_as_its_length_frame_and_sound() {
        let found = read(&clip(1080, 1920, 7)).unwrap();
        assert_eq!(found.duration_ms, Some(7_000));
        let frame = found.video.unwrap();
        assert_eq!(
            (frame.width, frame.height, frame.codec.as_str()),
            (1080, 1920, "h264")
        );
        assert_eq!(found.audio.as_deref(), Some("aac"));
    }

    #[test]
    fn every_wrong_clip_reads_as_wrong() {
        let asked = ClipSpec {
            width: 1280,
            height: 720,
            duration: Duration::from_secs(5),
            audio: true,
        };
        for fault in ClipFault::ALL {
            let read = read(&fault.render(&asked));
            match fault {
                ClipFault::Short => assert_eq!(read.unwrap().duration_ms, Some(3_000)),
                ClipFault::OtherResolution => {
                    let frame = read.unwrap().video.unwrap();
                    assert_eq!((frame.width, frame.height), (1920, 1080));
                }
                ClipFault::NoAudio => assert_eq!(read.unwrap().audio, None),
                ClipFault::Truncated | ClipFault::NotMp4 => assert!(read.is_err(), "{fault:?}"),
            }
        }
    }

    #[test]
    fn a_header_claiming_gigabytes_is_refused_at_once() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&1u32.to_be_bytes()); // a 64-bit size follows
        bytes.extend_from_slice(b"moov");
        bytes.extend_from_slice(&u64::MAX.to_be_bytes());
        bytes.extend_from_slice(&[0; 64]);
        let started = Instant::now();
        assert!(read(&bytes).is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random bytes, with or without an MP4's first box in front: an answer, never a panic
        /// or a stall.
        #[test]
        fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048), ftyp in any::<bool>()) {
            if ftyp {
                let mut head = clip(16, 16, 1)[..32].to_vec();
                head.append(&mut bytes);
                bytes = head;
            }
            let started = Instant::now();
            let _ = read(&bytes);
            prop_assert!(started.elapsed() < Duration::from_secs(2));
        }

        /// A real clip cut anywhere before its end is never read as a whole one.
        #[test]
        fn a_cut_clip_is_never_whole(cut in 0.0f64..1.0) {
            let whole = clip(1280, 720, 3);
            let at = ((whole.len() as f64) * cut) as usize;
            prop_assert!(read(&whole[..at]).is_err(), "cut at {} of {}", at, whole.len());
        }

        /// A real clip with bytes overwritten anywhere: an answer, never a panic or a stall.
        #[test]
        fn a_damaged_clip_never_panics(damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)) {
            let mut bytes = clip(960, 720, 2);
            for (at, byte) in damage {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let started = Instant::now();
            let _ = read(&bytes);
            prop_assert!(started.elapsed() < Duration::from_secs(2));
        }
    }
}
