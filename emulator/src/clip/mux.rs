//! An MP4 (ISO/IEC 14496-12 and -14) writer for exactly what a clip needs: one H.264 track,
//! optionally one AAC track, `moov` before `mdat`.
//!
//! Written by hand rather than with the `mp4` crate: its writer (0.14) puts `mdat` first and
//! `moov` at the end, and moving the index to the front afterwards would mean re-parsing its
//! output and shifting every chunk offset, more code than the twenty-odd boxes below. The
//! index must come first because the emulator answers no Range requests: a browser reading
//! the clip front to back has to meet the sample tables before the samples.

use std::ops::Range;

/// One coded frame: its bytes, how long it lasts in its track's timescale, and whether a
/// decoder can start at it.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    /// The frame's bytes (for H.264, length-prefixed NAL units).
    pub data: Vec<u8>,
    /// How long it is shown, in the track's timescale.
    pub duration: u32,
    /// Whether it is a sync sample (an IDR picture; every AAC frame).
    pub sync: bool,
}

/// What a track carries, with what its sample entry needs.
#[derive(Debug, Clone)]
pub(super) enum Codec {
    /// H.264: the display size and the parameter sets, as NAL units without length prefixes.
    Avc {
        /// Display width in pixels.
        width: u32,
        /// Display height in pixels.
        height: u32,
        /// The sequence parameter set.
        sps: Vec<u8>,
        /// The picture parameter set.
        pps: Vec<u8>,
    },
    /// AAC: the output format and the `AudioSpecificConfig`.
    Aac {
        /// Samples per second.
        sample_rate: u32,
        /// Channel count.
        channels: u16,
        /// The `AudioSpecificConfig` bytes.
        config: Vec<u8>,
    },
}

/// One track to write.
#[derive(Debug, Clone)]
pub(super) struct Track {
    /// The sample entry's codec.
    pub codec: Codec,
    /// Ticks per second of the track's media time.
    pub timescale: u32,
    /// The samples, in decoding (and presentation) order.
    pub samples: Vec<Sample>,
    /// How much of it is presented, in the movie's timescale. When that is less than the
    /// media (AAC frames come 1024 samples at a time), an edit list trims the rest.
    pub presented: u32,
}

impl Track {
    fn media_duration(&self) -> u32 {
        u32_of(self.samples.iter().map(|s| u64::from(s.duration)).sum())
    }

    /// The samples grouped into chunks of one second of media each: the interleaving unit.
    fn chunks(&self) -> Vec<(u64, Range<usize>)> {
        let mut chunks: Vec<(u64, Range<usize>)> = Vec::new();
        let mut dts = 0u64;
        for (index, sample) in self.samples.iter().enumerate() {
            let second = dts / u64::from(self.timescale.max(1));
            match chunks.last_mut() {
                Some((s, range)) if *s == second => range.end = index + 1,
                _ => chunks.push((second, index..index + 1)),
            }
            dts += u64::from(sample.duration);
        }
        chunks
    }
}

/// The whole file: `ftyp`, `moov`, `mdat`. Tracks get ids 1, 2, … in order; the movie's
/// timescale is `movie_timescale`.
pub(super) fn mp4(movie_timescale: u32, tracks: &[Track]) -> Vec<u8> {
    // Interleave second by second (each track's chunk for second 0, then second 1, …) so a
    // player streaming the file has both tracks' data at hand as it plays.
    let chunks: Vec<Vec<(u64, Range<usize>)>> = tracks.iter().map(Track::chunks).collect();
    let mut order: Vec<(u64, usize, usize)> = chunks
        .iter()
        .enumerate()
        .flat_map(|(t, cs)| cs.iter().enumerate().map(move |(c, (s, _))| (*s, t, c)))
        .collect();
    order.sort_unstable();

    // Offsets from the start of mdat's payload, in chunk order per track.
    let mut relative: Vec<Vec<u64>> = chunks.iter().map(|cs| vec![0; cs.len()]).collect();
    let mut payload = Vec::new();
    for &(_, t, c) in &order {
        relative[t][c] = payload.len() as u64;
        for sample in &tracks[t].samples[chunks[t][c].1.clone()] {
            payload.extend_from_slice(&sample.data);
        }
    }

    let ftyp = ftyp();
    // The moov's size does not depend on the offsets it holds (stco entries are fixed
    // width), so build it once to learn where mdat's payload starts, then for real.
    let probe = moov(movie_timescale, tracks, &chunks, &relative, 0);
    let base = (ftyp.len() + probe.len() + 8) as u64;
    let moov = moov(movie_timescale, tracks, &chunks, &relative, base);

    let mut mdat = Mp4Box::new(b"mdat");
    mdat.bytes(&payload);
    [ftyp, moov, mdat.finish()].concat()
}

/// An ISO BMFF box being written: a 32-bit size (filled in by [`finish`](Mp4Box::finish)),
/// the four-character type, then the content, all big-endian.
struct Mp4Box(Vec<u8>);

impl Mp4Box {
    fn new(kind: &[u8; 4]) -> Self {
        let mut bytes = vec![0; 4];
        bytes.extend_from_slice(kind);
        Mp4Box(bytes)
    }

    /// A "full box": a plain box whose content starts with a version byte and 24 bits of
    /// flags.
    fn full(kind: &[u8; 4], version: u8, flags: u32) -> Self {
        let mut b = Self::new(kind);
        b.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        b
    }

    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }

    /// `count` zero bytes.
    fn zeros(&mut self, count: usize) -> &mut Self {
        self.0.resize(self.0.len() + count, 0);
        self
    }

    /// The unity transformation matrix of `mvhd` and `tkhd`: 16.16 ones on the diagonal and
    /// a 2.30 one in the corner.
    fn unity_matrix(&mut self) -> &mut Self {
        for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let size = u32_of(self.0.len() as u64).to_be_bytes();
        self.0[..4].copy_from_slice(&size);
        self.0
    }
}

/// A box holding only other boxes.
fn container(kind: &[u8; 4], children: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Mp4Box::new(kind);
    b.bytes(&children.concat());
    b.finish()
}

fn ftyp() -> Vec<u8> {
    let mut b = Mp4Box::new(b"ftyp");
    b.bytes(b"isom").u32(0x200);
    for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
        b.bytes(brand);
    }
    b.finish()
}

fn moov(
    timescale: u32,
    tracks: &[Track],
    chunks: &[Vec<(u64, Range<usize>)>],
    relative: &[Vec<u64>],
    base: u64,
) -> Vec<u8> {
    let duration = tracks.iter().map(|t| t.presented).max().unwrap_or(0);
    let mut children = vec![mvhd(timescale, duration, tracks.len())];
    for (index, track) in tracks.iter().enumerate() {
        let offsets: Vec<u32> = relative[index].iter().map(|r| u32_of(base + r)).collect();
        let id = u32_of(index as u64 + 1);
        children.push(trak(id, timescale, track, &chunks[index], &offsets));
    }
    container(b"moov", &children)
}

fn mvhd(timescale: u32, duration: u32, track_count: usize) -> Vec<u8> {
    let mut b = Mp4Box::full(b"mvhd", 0, 0);
    // Creation and modification times stay 0 so that the same clip is the same bytes.
    b.u32(0).u32(0).u32(timescale).u32(duration);
    b.u32(0x0001_0000).u16(0x0100).zeros(2 + 8); // rate 1.0, volume 1.0, reserved
    b.unity_matrix().zeros(24); // pre_defined
    b.u32(u32_of(track_count as u64 + 1)); // next_track_ID
    b.finish()
}

fn trak(
    id: u32,
    movie_timescale: u32,
    track: &Track,
    chunks: &[(u64, Range<usize>)],
    offsets: &[u32],
) -> Vec<u8> {
    let media = track.media_duration();
    let mut children = vec![tkhd(id, track)];
    // Trim the media to what is presented when it runs longer (AAC's whole frames).
    let media_in_movie_time =
        u64::from(media) * u64::from(movie_timescale) / u64::from(track.timescale.max(1));
    if u64::from(track.presented) < media_in_movie_time {
        children.push(container(b"edts", &[elst(track.presented)]));
    }
    let (handler, name, header): (&[u8; 4], &str, Vec<u8>) = match track.codec {
        Codec::Avc { .. } => {
            let mut vmhd = Mp4Box::full(b"vmhd", 0, 1);
            vmhd.zeros(8); // graphicsmode copy, opcolor
            (b"vide", "VideoHandler", vmhd.finish())
        }
        Codec::Aac { .. } => {
            let mut smhd = Mp4Box::full(b"smhd", 0, 0);
            smhd.zeros(4); // balance centred, reserved
            (b"soun", "SoundHandler", smhd.finish())
        }
    };
    let minf = container(b"minf", &[header, dinf(), stbl(track, chunks, offsets)]);
    children.push(container(
        b"mdia",
        &[mdhd(track.timescale, media), hdlr(handler, name), minf],
    ));
    container(b"trak", &children)
}

fn tkhd(id: u32, track: &Track) -> Vec<u8> {
    // Enabled and in the presentation.
    let mut b = Mp4Box::full(b"tkhd", 0, 0x000003);
    b.u32(0).u32(0).u32(id).u32(0).u32(track.presented);
    b.zeros(8).u16(0).u16(0); // reserved, layer, alternate_group
    let (volume, width, height) = match track.codec {
        Codec::Avc { width, height, .. } => (0, width, height),
        Codec::Aac { .. } => (0x0100, 0, 0),
    };
    b.u16(volume).zeros(2).unity_matrix();
    b.u32(width << 16).u32(height << 16); // 16.16 fixed point
    b.finish()
}

/// An edit list presenting the media from its start for `duration` (movie timescale).
fn elst(duration: u32) -> Vec<u8> {
    let mut b = Mp4Box::full(b"elst", 0, 0);
    b.u32(1).u32(duration).u32(0); // one entry: segment_duration, media_time 0
    b.u16(1).u16(0); // media_rate 1.0
    b.finish()
}

fn mdhd(timescale: u32, duration: u32) -> Vec<u8> {
    let mut b = Mp4Box::full(b"mdhd", 0, 0);
    b.u32(0).u32(0).u32(timescale).u32(duration);
    // Language "und" as three 5-bit letters offset by 0x60; then pre_defined.
    b.u16(0x55c4).u16(0);
    b.finish()
}

fn hdlr(handler: &[u8; 4], name: &str) -> Vec<u8> {
    let mut b = Mp4Box::full(b"hdlr", 0, 0);
    b.u32(0)
        .bytes(handler)
        .zeros(12)
        .bytes(name.as_bytes())
        .u8(0);
    b.finish()
}

/// The data reference: the samples are in this file (`url ` with the self-contained flag).
fn dinf() -> Vec<u8> {
    let mut dref = Mp4Box::full(b"dref", 0, 0);
    dref.u32(1).bytes(&Mp4Box::full(b"url ", 0, 1).finish());
    container(b"dinf", &[dref.finish()])
}

fn stbl(track: &Track, chunks: &[(u64, Range<usize>)], offsets: &[u32]) -> Vec<u8> {
    let mut children = vec![stsd(track), stts(&track.samples)];
    if track.samples.iter().any(|s| !s.sync) {
        children.push(stss(&track.samples));
    }
    children.extend([stsc(chunks), stsz(&track.samples), stco(offsets)]);
    container(b"stbl", &children)
}

fn stsd(track: &Track) -> Vec<u8> {
    let entry = match &track.codec {
        Codec::Avc {
            width,
            height,
            sps,
            pps,
        } => avc1(*width, *height, sps, pps),
        Codec::Aac {
            sample_rate,
            channels,
            config,
        } => mp4a(
            *sample_rate,
            *channels,
            config,
            &track.samples,
            track.timescale,
        ),
    };
    let mut b = Mp4Box::full(b"stsd", 0, 0);
    b.u32(1).bytes(&entry);
    b.finish()
}

/// The H.264 sample entry (ISO/IEC 14496-15 § 5.4.2) with its `avcC`.
fn avc1(width: u32, height: u32, sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut b = Mp4Box::new(b"avc1");
    b.zeros(6).u16(1); // reserved, data_reference_index
    b.zeros(16); // pre_defined, reserved
    b.u16(u16_of(width)).u16(u16_of(height));
    b.u32(0x0048_0000).u32(0x0048_0000); // 72 dpi both ways
    b.u32(0).u16(1); // reserved, frame_count
    b.zeros(32); // compressorname: empty
    b.u16(0x0018).u16(0xffff); // depth 24, pre_defined −1
    b.bytes(&avcc(sps, pps));
    b.finish()
}

/// `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 § 5.3.3.1).
fn avcc(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut b = Mp4Box::new(b"avcC");
    // configurationVersion, then the SPS's profile, constraint flags and level bytes.
    b.u8(1).bytes(sps.get(1..4).unwrap_or(&[66, 0xc0, 40]));
    b.u8(0xff); // 6 reserved bits, lengthSizeMinusOne 3: 4-byte NAL lengths
    b.u8(0xe1); // 3 reserved bits, one SPS
    b.u16(u16_of(sps.len() as u32)).bytes(sps);
    b.u8(1).u16(u16_of(pps.len() as u32)).bytes(pps);
    b.finish()
}

/// The AAC sample entry (ISO/IEC 14496-14 § 6.7) with its `esds`.
fn mp4a(
    sample_rate: u32,
    channels: u16,
    config: &[u8],
    samples: &[Sample],
    timescale: u32,
) -> Vec<u8> {
    let mut b = Mp4Box::new(b"mp4a");
    b.zeros(6).u16(1); // reserved, data_reference_index
    b.zeros(8).u16(channels).u16(16).zeros(4); // reserved, 16-bit samples, pre_defined
    b.u32(sample_rate << 16); // 16.16, which holds rates up to 65535 Hz
    let bytes: u64 = samples.iter().map(|s| s.data.len() as u64).sum();
    let ticks: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
    let bitrate = u32_of(
        (bytes * 8 * u64::from(timescale))
            .checked_div(ticks)
            .unwrap_or(0),
    );
    b.bytes(&esds(config, bitrate));
    b.finish()
}

/// The elementary stream descriptor (ISO/IEC 14496-1 § 7.2.6.5) of an AAC track.
fn esds(config: &[u8], bitrate: u32) -> Vec<u8> {
    let decoder_specific = descriptor(0x05, config);
    let mut decoder_config = vec![
        0x40, // objectTypeIndication: MPEG-4 Audio (ISO/IEC 14496-3)
        0x15, // streamType 5 (audio) << 2, upStream 0, reserved 1
        0, 0, 0, // bufferSizeDB
    ];
    decoder_config.extend_from_slice(&bitrate.to_be_bytes()); // maxBitrate
    decoder_config.extend_from_slice(&bitrate.to_be_bytes()); // avgBitrate
    decoder_config.extend_from_slice(&decoder_specific);
    let mut es = vec![0, 0, 0]; // ES_ID 0 (the track says which), no flags
    es.extend_from_slice(&descriptor(0x04, &decoder_config));
    es.extend_from_slice(&descriptor(0x06, &[0x02])); // SLConfigDescriptor: MP4 predefined
    let mut b = Mp4Box::full(b"esds", 0, 0);
    b.bytes(&descriptor(0x03, &es));
    b.finish()
}

/// A descriptor: tag, size in 7-bit groups (high bit = more follow), content.
fn descriptor(tag: u8, content: &[u8]) -> Vec<u8> {
    let size = u32_of(content.len() as u64);
    let mut out = vec![tag];
    let groups = (1..4).rev().filter(|&g| size >> (7 * g) != 0);
    for g in groups {
        out.push(0x80 | ((size >> (7 * g)) & 0x7f) as u8);
    }
    out.push((size & 0x7f) as u8);
    out.extend_from_slice(content);
    out
}

/// Time to sample: runs of equal durations.
fn stts(samples: &[Sample]) -> Vec<u8> {
    let runs = runs(samples.iter().map(|s| s.duration));
    let mut b = Mp4Box::full(b"stts", 0, 0);
    b.u32(u32_of(runs.len() as u64));
    for (count, duration) in runs {
        b.u32(count).u32(duration);
    }
    b.finish()
}

/// The sync samples, numbered from 1.
fn stss(samples: &[Sample]) -> Vec<u8> {
    let sync: Vec<u32> = (1..)
        .zip(samples)
        .filter(|(_, s)| s.sync)
        .map(|(n, _)| n)
        .collect();
    let mut b = Mp4Box::full(b"stss", 0, 0);
    b.u32(u32_of(sync.len() as u64));
    for n in sync {
        b.u32(n);
    }
    b.finish()
}

/// Sample to chunk: one entry per run of chunks with the same number of samples.
fn stsc(chunks: &[(u64, Range<usize>)]) -> Vec<u8> {
    let mut b = Mp4Box::full(b"stsc", 0, 0);
    let mut entries = Vec::new();
    let mut first_chunk = 1;
    for (count, per_chunk) in runs(chunks.iter().map(|(_, r)| u32_of(r.len() as u64))) {
        entries.push((first_chunk, per_chunk));
        first_chunk += count;
    }
    b.u32(u32_of(entries.len() as u64));
    for (first, per_chunk) in entries {
        b.u32(first).u32(per_chunk).u32(1); // sample_description_index
    }
    b.finish()
}

/// Sample sizes: one shared size when all agree (an AAC track of one repeated frame),
/// otherwise a table.
fn stsz(samples: &[Sample]) -> Vec<u8> {
    let sizes: Vec<u32> = samples
        .iter()
        .map(|s| u32_of(s.data.len() as u64))
        .collect();
    let shared = match sizes.first() {
        Some(&first) if sizes.iter().all(|&s| s == first) => first,
        _ => 0,
    };
    let mut b = Mp4Box::full(b"stsz", 0, 0);
    b.u32(shared).u32(u32_of(sizes.len() as u64));
    if shared == 0 {
        for size in sizes {
            b.u32(size);
        }
    }
    b.finish()
}

fn stco(offsets: &[u32]) -> Vec<u8> {
    let mut b = Mp4Box::full(b"stco", 0, 0);
    b.u32(u32_of(offsets.len() as u64));
    for &offset in offsets {
        b.u32(offset);
    }
    b.finish()
}

/// Run-length encoding: `(how many in a row, value)`.
fn runs(values: impl Iterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for value in values {
        match runs.last_mut() {
            Some((count, v)) if *v == value => *count += 1,
            _ => runs.push((1, value)),
        }
    }
    runs
}

/// `n` as a box field. Clips are kilobytes long and minutes short, so nothing comes near
/// the limit; saturating keeps a mistake from panicking.
fn u32_of(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn u16_of(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_sizes_use_seven_bit_groups() {
        assert_eq!(descriptor(5, &[1, 2]), [5, 2, 1, 2]);
        let long = descriptor(4, &[0; 200]);
        assert_eq!(long[..3], [4, 0x81, 0x48], "200 = 1×128 + 72");
        assert_eq!(long.len(), 203);
    }

    #[test]
    fn runs_and_chunks() {
        assert_eq!(runs([5, 5, 5, 2].into_iter()), [(3, 5), (1, 2)]);
        assert!(runs(std::iter::empty()).is_empty());
        let track = Track {
            codec: Codec::Aac {
                sample_rate: 10,
                channels: 1,
                config: vec![],
            },
            timescale: 10,
            samples: vec![
                Sample {
                    data: vec![1],
                    duration: 4,
                    sync: true,
                };
                7
            ],
            presented: 25,
        };
        // Decoding times 0, 4, 8 | 12, 16 | 20, 24: seconds 0, 1 and 2.
        let chunks: Vec<_> = track.chunks().into_iter().map(|(_, r)| r).collect();
        assert_eq!(chunks, [0..3, 3..5, 5..7]);
        assert_eq!(track.media_duration(), 28);
    }

    #[test]
    fn boxes_carry_their_size() {
        let ftyp = ftyp();
        assert_eq!(ftyp.len(), 8 + 8 + 16);
        assert_eq!(ftyp[..8], [0, 0, 0, 32, b'f', b't', b'y', b'p']);
        let dinf = dinf();
        assert_eq!(
            u32::from_be_bytes(dinf[..4].try_into().unwrap()) as usize,
            dinf.len()
        );
    }
}
