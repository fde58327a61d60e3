//! Reading an MP4's facts with Mozilla's `mp4parse` (fuzzed, shipped in Firefox), not a parser
//! of our own, within bounds a hostile file cannot stretch.
//!
//! The file comes from the provider's storage (or whatever its URL pointed at), so nothing in
//! it is trusted:
//!
//! - its top-level box headers are walked first (sizes and types only, nothing parsed) and a
//!   movie box (`moov`, the index `mp4parse` reads into memory) over [`MAX_INDEX_BYTES`] is
//!   refused: `mp4parse` allocates fallibly, but with overcommit that stops nothing, and each
//!   8-byte empty track would cost it hundreds of bytes;
//! - it is read through a [`Read::take`] of its own length, never more than
//!   [`MAX_CLIP_BYTES`]; a panic inside `mp4parse` (none is known) is caught;
//! - what the headers claim is checked against what the file holds: each track's sample index
//!   must lie inside the file (a cut-off download reads as truncated), a track's length is the
//!   shorter of what its headers say and what its samples add up to, and an audio track counts
//!   only with samples in it.

use super::{Found, Frame};
use mp4parse::{
    AudioCodecSpecific, CodecType, MediaContext, SampleEntry, Track, TrackType, read_mp4,
};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// The largest file read: the download's own limit ([`crate::download`]'s
/// `MAX_DOWNLOAD_BYTES`), so nothing downloaded is too large to check.
pub(crate) const MAX_CLIP_BYTES: u64 = crate::download::MAX_DOWNLOAD_BYTES;

/// The largest movie box (the index) read: a 15 s clip's is a few kilobytes, an hour at 60
/// frames a second about 1 MiB. At most about 50 times this in memory, whatever it holds.
pub(crate) const MAX_INDEX_BYTES: u64 = 2 << 20;

/// Why a file's facts could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The file is not a readable MP4: the provider's (or its storage's) doing.
    NotMp4(String),
    /// This host could not read its own file (a disk error, a failed task): nothing is known
    /// about the clip.
    Host(String),
}

/// Read the MP4 at `path`: its length, frame and audio, or why it cannot be read as one.
/// Blocking (it reads the whole file); run it off the async threads.
pub fn inspect(path: &Path) -> Result<Found, ReadError> {
    let host = |what: &str, e: std::io::Error| ReadError::Host(format!("{what}: {e}"));
    let mut file = File::open(path).map_err(|e| host("cannot open the file", e))?;
    let len = file
        .metadata()
        .map_err(|e| host("cannot read the file's size", e))?
        .len();
    if len > MAX_CLIP_BYTES {
        return Err(ReadError::NotMp4(format!(
            "{len} bytes is over the {MAX_CLIP_BYTES}-byte limit"
        )));
    }
    // Unbuffered: the walk reads 8 or 16 bytes per top-level box and seeks over the rest.
    check_index_size(&mut file, len)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| host("cannot read the file", e))?;
    inspect_reader(BufReader::new(file).take(len), len)
}

/// Walks the top-level box headers of a `len`-byte file (nothing inside them: each body is
/// seeked over, not read) and refuses a movie box larger than [`MAX_INDEX_BYTES`]. What is not
/// a box header is left for `mp4parse` to refuse.
fn check_index_size(reader: &mut (impl Read + Seek), len: u64) -> Result<(), ReadError> {
    let mut at = 0u64;
    while len.saturating_sub(at) >= 8 {
        let mut head = [0u8; 16];
        if reader.read_exact(&mut head[..8]).is_err() {
            return Ok(());
        }
        let small = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        let (size, header) = match small {
            // To the end of the file.
            0 => (len - at, 8),
            // A 64-bit size follows the type.
            1 => {
                if reader.read_exact(&mut head[8..16]).is_err() {
                    return Ok(());
                }
                let mut large = [0u8; 8];
                large.copy_from_slice(&head[8..16]);
                (u64::from_be_bytes(large), 16)
            }
            n => (n, 8),
        };
        if &head[4..8] == b"moov" && size > MAX_INDEX_BYTES {
            return Err(ReadError::NotMp4(format!(
                "its index (moov) claims {size} bytes, over the {MAX_INDEX_BYTES}-byte limit"
            )));
        }
        if size < header {
            return Ok(());
        }
        at = at.saturating_add(size);
        if at >= len || reader.seek(SeekFrom::Start(at)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// [`inspect`] over any reader of `len` bytes (its index size already checked).
pub(crate) fn inspect_reader(mut reader: impl Read, len: u64) -> Result<Found, ReadError> {
    let not_mp4 = |why: String| ReadError::NotMp4(why);
    let parsed = catch_unwind(AssertUnwindSafe(|| read_mp4(&mut reader)))
        .map_err(|_| not_mp4("the MP4 parser gave up on it".into()))?;
    let context = parsed.map_err(|e| match e {
        mp4parse::Error::MoovMissing => not_mp4("no movie box (moov): not an MP4".into()),
        mp4parse::Error::UnexpectedEOF => {
            not_mp4(format!("truncated: it ends early, after {len} bytes"))
        }
        // A box whose header claims more than the file holds: `mp4parse` reads what there is
        // and finds the box unfinished.
        mp4parse::Error::InvalidData(mp4parse::Status::CheckParserStateErr) => not_mp4(format!(
            "truncated or corrupt: a box runs past the end of the {len}-byte file"
        )),
        mp4parse::Error::Io(e) => ReadError::Host(format!("reading the file: {e}")),
        mp4parse::Error::OutOfMemory => ReadError::Host("out of memory reading it".into()),
        other => not_mp4(format!("the MP4 parser refused it: {other:?}")),
    })?;
    facts(&context, len).map_err(not_mp4)
}

/// The facts of a parsed file whose length is `len`.
fn facts(context: &MediaContext, len: u64) -> Result<Found, String> {
    if context.tracks.is_empty() {
        return Err("it has no tracks".into());
    }
    for track in context.tracks.iter() {
        if let Some(end) = data_end(track)?
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
    // A track of sound counts only with samples in it.
    let audio = context
        .tracks
        .iter()
        .find(|t| t.track_type == TrackType::Audio && samples_ms(t).is_some_and(|ms| ms > 0));
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

/// `ticks` at `per_second` in milliseconds, `None` when it does not fit or the scale is 0.
fn to_ms(ticks: u64, per_second: u64) -> Option<u64> {
    if per_second == 0 {
        return None;
    }
    u64::try_from(u128::from(ticks) * 1000 / u128::from(per_second)).ok()
}

/// How long `track` plays, in milliseconds: the shorter of what its headers say (its edit
/// list's length in the movie's timescale when it has a non-zero one, else its media
/// duration) and what its samples add up to — a header cannot claim seconds the file does not
/// hold. `None` when neither is known (a fragmented file whose movie box lists no samples and
/// no fragment duration): unknown, not zero.
fn duration_ms(context: &MediaContext, track: &Track) -> Option<u64> {
    let edited = match (track.edited_duration, context.timescale) {
        (Some(edited), Some(scale)) if edited.0 > 0 => to_ms(edited.0, scale.0),
        _ => None,
    };
    let media = match (track.duration, track.timescale) {
        (Some(duration), Some(scale)) if duration.0 > 0 => to_ms(duration.0, scale.0),
        _ => None,
    };
    let claimed = edited.or(media);
    let fragmented = context
        .mvex
        .as_ref()
        .and_then(|mvex| mvex.fragment_duration)
        .and_then(|d| to_ms(d.0, context.timescale?.0));
    match (claimed, samples_ms(track)) {
        (Some(claimed), Some(held)) if held > 0 => Some(claimed.min(held)),
        (claimed, _) => claimed.or(fragmented),
    }
}

/// What `track`'s samples add up to (its `stts`), in milliseconds of its timescale.
fn samples_ms(track: &Track) -> Option<u64> {
    let scale = track.timescale?.0;
    let ticks = track
        .stts
        .as_ref()?
        .samples
        .iter()
        .try_fold(0u64, |sum, run| {
            sum.checked_add(u64::from(run.sample_count).checked_mul(u64::from(run.sample_delta))?)
        })?;
    to_ms(ticks, scale)
}

/// The video track's displayed frame (its header's 16.16 size, turned when its matrix turns
/// the picture a quarter), falling back to the sample entry's coded size when the header has
/// none.
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
        Some(tkhd) if tkhd.width > 0 && tkhd.height > 0 => {
            let (w, h) = (tkhd.width >> 16, tkhd.height >> 16);
            let m = &tkhd.matrix;
            // A quarter turn (portrait video stored landscape): a = d = 0, b and c not.
            if m.a == 0 && m.d == 0 && m.b != 0 && m.c != 0 {
                (h, w)
            } else {
                (w, h)
            }
        }
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
/// per chunk (`stsc`) and their sizes (`stsz`); `Ok(None)` when the track has no such index (a
/// fragmented file), an error when the index contradicts itself. The work is one step per
/// chunk and per listed sample size — both tables `mp4parse` has already read — so a hostile
/// count cannot make it loop longer.
fn data_end(track: &Track) -> Result<Option<u64>, String> {
    let (Some(stsc), Some(stco), Some(stsz)) = (&track.stsc, &track.stco, &track.stsz) else {
        return Ok(None);
    };
    let broken = || "its sample index contradicts itself".to_string();
    let mut sizes = stsz.sample_sizes.iter();
    let mut end = 0u64;
    let runs = stsc.samples.as_slice();
    for (i, run) in runs.iter().enumerate() {
        // Chunks are numbered from 1; this run lasts until the next run's first chunk.
        let first = (run.first_chunk as usize)
            .checked_sub(1)
            .ok_or_else(broken)?;
        let last = match runs.get(i + 1) {
            Some(next) => (next.first_chunk as usize)
                .checked_sub(1)
                .ok_or_else(broken)?,
            None => stco.offsets.len(),
        };
        let chunks = stco
            .offsets
            .get(first..last.min(stco.offsets.len()))
            .ok_or_else(broken)?;
        for offset in chunks {
            let bytes = if stsz.sample_size > 0 {
                u64::from(stsz.sample_size) * u64::from(run.samples_per_chunk)
            } else {
                let mut sum = 0u64;
                for _ in 0..run.samples_per_chunk {
                    let Some(size) = sizes.next() else { break };
                    sum = sum.saturating_add(u64::from(*size));
                }
                sum
            };
            end = end.max(offset.saturating_add(bytes));
        }
    }
    Ok(Some(end))
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

    fn read(bytes: &[u8]) -> Result<Found, ReadError> {
        check_index_size(&mut std::io::Cursor::new(bytes), bytes.len() as u64)?;
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

    #[test]
    fn an_index_too_large_for_any_clip_is_refused_before_it_is_parsed() {
        // An index of empty tracks: 8 bytes each in the file, hundreds in the parser's memory.
        let tracks = (MAX_INDEX_BYTES / 8 + 1) as usize;
        let size = 8 + 8 * tracks as u32;
        let mut bytes = clip(16, 16, 1)[..32].to_vec();
        let ftyp = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        bytes.truncate(ftyp);
        bytes.extend_from_slice(&size.to_be_bytes());
        bytes.extend_from_slice(b"moov");
        for _ in 0..tracks {
            bytes.extend_from_slice(&8u32.to_be_bytes());
            bytes.extend_from_slice(b"trak");
        }
        match read(&bytes) {
            Err(ReadError::NotMp4(why)) => assert!(why.contains("index (moov)"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_index_pointing_past_the_end_is_truncated() {
        // The whole clip, then cut just after its index: every sample is missing.
        let whole = clip(1280, 720, 3);
        let moov_end = {
            let ftyp = u32::from_be_bytes([whole[0], whole[1], whole[2], whole[3]]) as usize;
            let moov = u32::from_be_bytes([
                whole[ftyp],
                whole[ftyp + 1],
                whole[ftyp + 2],
                whole[ftyp + 3],
            ]) as usize;
            assert_eq!(&whole[ftyp + 4..ftyp + 8], b"moov");
            ftyp + moov
        };
        for cut in [moov_end, moov_end + 4, moov_end + 8, moov_end + 100] {
            match read(&whole[..cut]) {
                Err(ReadError::NotMp4(why)) => assert!(why.contains("truncated"), "{cut}: {why}"),
                other => panic!("{cut}: {other:?}"),
            }
        }
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
