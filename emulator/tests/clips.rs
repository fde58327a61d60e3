//! The clips the emulator serves, read back by an independent parser: Mozilla's `mp4parse`,
//! the one Firefox uses.

use std::io::Cursor;
use std::time::Duration;

use happyhorse_emulator::{ClipFault, ClipSpec, Emulator, EmulatorConfig, frame_size};
use mp4parse::{CodecType, SampleEntry, Track, TrackType};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// The API's frame sizes, written out again here so that a slip in `frame_size` shows.
const SIZES: [(&str, &str, u32, u32); 10] = [
    ("720p", "16:9", 1280, 720),
    ("720p", "9:16", 720, 1280),
    ("720p", "1:1", 720, 720),
    ("720p", "4:3", 960, 720),
    ("720p", "3:4", 720, 960),
    ("1080p", "16:9", 1920, 1080),
    ("1080p", "9:16", 1080, 1920),
    ("1080p", "1:1", 1080, 1080),
    ("1080p", "4:3", 1440, 1080),
    ("1080p", "3:4", 1080, 1440),
];

/// What a clip says about itself.
#[derive(Debug)]
struct Reading {
    /// Top-level box types, in file order.
    boxes: Vec<String>,
    /// `mvhd`'s duration in seconds.
    movie_seconds: f64,
    video: Option<VideoReading>,
    audio: Option<AudioReading>,
    /// Whether every sample the tables point at lies inside the file.
    samples_inside: bool,
}

#[derive(Debug)]
struct VideoReading {
    tkhd: (u32, u32),
    entry: (u16, u16),
    seconds: f64,
    sync_samples: Vec<u32>,
}

#[derive(Debug)]
struct AudioReading {
    sample_rate: f64,
    channels: u32,
    media_seconds: f64,
    presented_seconds: Option<f64>,
}

/// Reads `bytes` with mp4parse; `Err` with its complaint when it refuses them.
fn read(bytes: &[u8]) -> Result<Reading, String> {
    let context = mp4parse::read_mp4(&mut Cursor::new(bytes)).map_err(|e| format!("{e:?}"))?;
    let movie_scale = context.timescale.map_or(0, |t| t.0) as f64;
    let mut reading = Reading {
        boxes: top_level_boxes(bytes),
        movie_seconds: mvhd_ticks(bytes).map_or(f64::NAN, |t| t as f64 / movie_scale),
        video: None,
        audio: None,
        samples_inside: true,
    };
    for track in context.tracks.iter() {
        reading.samples_inside &= samples_inside(track, bytes.len() as u64);
        let seconds = match (track.duration, track.timescale) {
            (Some(d), Some(t)) => d.0 as f64 / t.0 as f64,
            _ => f64::NAN,
        };
        let entry = track
            .stsd
            .as_ref()
            .and_then(|stsd| stsd.descriptions.first());
        match (&track.track_type, entry) {
            (TrackType::Video, Some(SampleEntry::Video(entry))) => {
                assert_eq!(entry.codec_type, CodecType::H264);
                let tkhd = track.tkhd.as_ref().ok_or("no tkhd")?;
                reading.video = Some(VideoReading {
                    tkhd: (tkhd.width >> 16, tkhd.height >> 16),
                    entry: (entry.width, entry.height),
                    seconds,
                    sync_samples: track
                        .stss
                        .as_ref()
                        .map(|s| s.samples.to_vec())
                        .unwrap_or_default(),
                });
            }
            (TrackType::Audio, Some(SampleEntry::Audio(entry))) => {
                assert_eq!(entry.codec_type, CodecType::AAC);
                reading.audio = Some(AudioReading {
                    sample_rate: entry.samplerate,
                    channels: entry.channelcount,
                    media_seconds: seconds,
                    presented_seconds: track.edited_duration.map(|d| d.0 as f64 / movie_scale),
                });
            }
            other => return Err(format!("unexpected track {other:?}")),
        }
    }
    Ok(reading)
}

/// Whether every sample of `track` (by its chunk offsets, sample-to-chunk runs and sizes)
/// ends within a file of `len` bytes.
fn samples_inside(track: &Track, len: u64) -> bool {
    let (Some(stco), Some(stsc), Some(stsz)) = (&track.stco, &track.stsc, &track.stsz) else {
        return false;
    };
    let size_of = |index: usize| match stsz.sample_size {
        0 => stsz.sample_sizes.get(index).copied().map(u64::from),
        shared => Some(u64::from(shared)),
    };
    let mut sample = 0;
    for (chunk, &offset) in stco.offsets.iter().enumerate() {
        let chunk_number = chunk as u32 + 1;
        let per_chunk = stsc
            .samples
            .iter()
            .filter(|run| run.first_chunk <= chunk_number)
            .last()
            .map_or(0, |run| run.samples_per_chunk);
        let mut end = offset;
        for _ in 0..per_chunk {
            match size_of(sample) {
                Some(size) => end += size,
                None => return false,
            }
            sample += 1;
        }
        if end > len {
            return false;
        }
    }
    true
}

/// The type of each top-level box, as far as the sizes lead.
fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut boxes = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 8) {
        let size = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
        boxes.push(String::from_utf8_lossy(&header[4..]).into_owned());
        if size < 8 {
            break;
        }
        at += size;
    }
    boxes
}

/// `mvhd`'s duration field, found inside `moov` (version 0 layout).
fn mvhd_ticks(bytes: &[u8]) -> Option<u32> {
    let at = bytes.windows(4).position(|w| w == b"mvhd")?;
    // type, version+flags, creation, modification, timescale, then duration.
    let field = bytes.get(at + 20..at + 24)?;
    Some(u32::from_be_bytes(field.try_into().ok()?))
}

fn spec(resolution: &str, aspect_ratio: &str, seconds: f64) -> ClipSpec {
    let (width, height) = frame_size(resolution, aspect_ratio).expect("a documented size");
    ClipSpec {
        width,
        height,
        duration: Duration::from_secs_f64(seconds),
        audio: true,
    }
}

/// Asserts that `reading` is a whole, right clip of `width`×`height` lasting `seconds`.
fn assert_right(reading: &Reading, width: u32, height: u32, seconds: f64) {
    let context = format!("{width}x{height} {seconds}s: {reading:?}");
    assert_eq!(reading.boxes, ["ftyp", "moov", "mdat"], "{context}");
    assert!((reading.movie_seconds - seconds).abs() < 0.05, "{context}");
    assert!(reading.samples_inside, "{context}");
    let video = reading.video.as_ref().expect("a video track");
    assert_eq!(video.tkhd, (width, height), "{context}");
    assert_eq!(video.entry, (width as u16, height as u16), "{context}");
    assert!((video.seconds - seconds).abs() < 0.05, "{context}");
    assert_eq!(video.sync_samples, [1], "one IDR picture, first: {context}");
    let audio = reading.audio.as_ref().expect("an audio track");
    assert_eq!(
        (audio.sample_rate, audio.channels),
        (48_000.0, 1),
        "{context}"
    );
    let frame = 1024.0 / 48_000.0;
    assert!(
        audio.media_seconds >= seconds && audio.media_seconds < seconds + frame,
        "the sound covers the clip in whole frames: {context}"
    );
    // An edit list trims the last frame's overhang; with none, the frames fit exactly.
    let presented = audio.presented_seconds.unwrap_or(audio.media_seconds);
    assert!((presented - seconds).abs() < 0.05, "{context}");
}

#[test]
fn every_size_and_duration_reads_back() {
    for (resolution, aspect_ratio, width, height) in SIZES {
        assert_eq!(
            frame_size(resolution, aspect_ratio),
            Some((width, height)),
            "{resolution} {aspect_ratio}"
        );
        for seconds in [3.0, 7.5, 4.321, 15.0] {
            let clip = spec(resolution, aspect_ratio, seconds).render();
            let reading = read(&clip).unwrap_or_else(|e| panic!("{width}x{height}: {e}"));
            assert_right(&reading, width, height, seconds);
            assert!(
                clip.len() < 48 * 1024,
                "{width}x{height} {seconds}s: {} bytes",
                clip.len()
            );
        }
    }
}

#[test]
fn clips_are_small_and_the_same_every_time() {
    let short = spec("720p", "16:9", 3.0).render();
    let long = spec("1080p", "9:16", 15.0).render();
    println!(
        "3 s 720p 16:9: {} bytes; 15 s 1080p 9:16: {} bytes",
        short.len(),
        long.len()
    );
    assert!(short.len() < 12 * 1024, "{}", short.len());
    assert!(long.len() < 32 * 1024, "{}", long.len());
    assert_eq!(long, spec("1080p", "9:16", 15.0).render());
}

#[test]
fn wrong_clips_are_wrong_in_their_own_way() {
    for (resolution, aspect_ratio, seconds, other) in [
        ("720p", "16:9", 3.0, (1920, 1080)),
        ("1080p", "3:4", 7.5, (720, 960)),
    ] {
        let asked = spec(resolution, aspect_ratio, seconds);
        let (width, height) = (asked.width, asked.height);
        let wrong = |fault: ClipFault| {
            let bytes = fault.render(&asked);
            assert_eq!(bytes, fault.render(&asked), "{fault:?} is deterministic");
            bytes
        };

        let short = read(&wrong(ClipFault::Short)).unwrap();
        let expected = (seconds - 2.0).max(1.0);
        assert_right(&short, width, height, expected);
        assert!(short.movie_seconds < seconds - 0.9, "{short:?}");

        let resized = read(&wrong(ClipFault::OtherResolution)).unwrap();
        assert_right(&resized, other.0, other.1, seconds);

        let silent = read(&wrong(ClipFault::NoAudio)).unwrap();
        assert!(silent.audio.is_none(), "{silent:?}");
        let video = silent.video.as_ref().unwrap();
        assert_eq!(video.tkhd, (width, height));
        assert!((video.seconds - seconds).abs() < 0.05);

        let truncated = wrong(ClipFault::Truncated);
        let whole = asked.render();
        assert_eq!(truncated.len(), whole.len() / 2);
        match read(&truncated) {
            Err(_) => {}
            Ok(reading) => assert!(!reading.samples_inside, "{reading:?}"),
        }

        let page = wrong(ClipFault::NotMp4);
        assert!(read(&page).is_err());
        assert!(page.starts_with(b"<!DOCTYPE html>"));
    }
}

// ---- Through the emulator's own routes ----

const KEY: &str = "emulator-key";

/// An emulator whose jobs complete at once, with `clip_fault` for every job.
async fn emulator(clip_fault: Option<ClipFault>) -> Emulator {
    Emulator::start(EmulatorConfig {
        queued_ms: 0,
        running_ms: 0,
        rate_limit_per_minute: 0,
        clip_fault,
        ..EmulatorConfig::linear()
    })
    .await
    .expect("the emulator starts")
}

/// Submits `fields` (over a minimal body), waits for completion, downloads the clip.
async fn clip_for(emu: &Emulator, fields: Value) -> Vec<u8> {
    let client = Client::new();
    let mut body = json!({"model": "happyhorse-1-1", "prompt": "A horse on a beach."});
    for (key, value) in fields.as_object().unwrap() {
        body[key] = value.clone();
    }
    let answer: Value = client
        .post(format!("{}/v1/videos/generations", emu.base_url()))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = answer["job_id"].as_str().expect("a job id").to_owned();
    let url = loop {
        let job: Value = client
            .get(format!("{}/v1/jobs/{job_id}", emu.base_url()))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] == "completed" {
            break job["result"]["output_urls"][0].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().await.unwrap().to_vec();
    assert_eq!(bytes.len(), length);
    bytes
}

#[tokio::test]
async fn a_completed_jobs_clip_matches_its_request() {
    let emu = emulator(None).await;
    let clip = clip_for(
        &emu,
        json!({"resolution": "1080p", "aspect_ratio": "9:16", "duration": 4.5}),
    )
    .await;
    assert_right(&read(&clip).unwrap(), 1080, 1920, 4.5);
    assert_eq!(clip, spec("1080p", "9:16", 4.5).render());

    // Defaults: 720p, 16:9, 5 s.
    assert_right(
        &read(&clip_for(&emu, json!({})).await).unwrap(),
        1280,
        720,
        5.0,
    );

    // i2v follows the source image's aspect, which the emulator takes to be 16:9.
    let image = json!({"mode": "i2v", "image": "https://example.com/horse.png",
        "aspect_ratio": "9:16", "duration": 3});
    assert_right(&read(&clip_for(&emu, image).await).unwrap(), 1280, 720, 3.0);
    emu.shutdown().await;
}

#[tokio::test]
async fn prompt_markers_and_the_config_spoil_clips() {
    let emu = emulator(None).await;
    let marked = |fault: ClipFault| json!({"prompt": format!("A horse {}", fault.marker())});

    let silent = read(&clip_for(&emu, marked(ClipFault::NoAudio)).await).unwrap();
    assert!(
        silent.audio.is_none() && silent.video.is_some(),
        "{silent:?}"
    );
    let short = read(&clip_for(&emu, marked(ClipFault::Short)).await).unwrap();
    assert!((short.movie_seconds - 3.0).abs() < 0.05, "{short:?}");
    let page = clip_for(&emu, marked(ClipFault::NotMp4)).await;
    assert!(read(&page).is_err());
    // Unmarked jobs are unaffected.
    assert_right(
        &read(&clip_for(&emu, json!({})).await).unwrap(),
        1280,
        720,
        5.0,
    );
    emu.shutdown().await;

    // The config spoils every job; a prompt's marker still wins for its own.
    let emu = emulator(Some(ClipFault::Short)).await;
    let short = read(&clip_for(&emu, json!({"duration": 10})).await).unwrap();
    assert_right(&short, 1280, 720, 8.0);
    let resized = read(&clip_for(&emu, marked(ClipFault::OtherResolution)).await).unwrap();
    assert_right(&resized, 1920, 1080, 5.0);
    emu.shutdown().await;
}
