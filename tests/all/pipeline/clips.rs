//! What was paid for against what was delivered: every downloaded clip is read with Mozilla's
//! MP4 parser and judged against its request; the emulator serves real MP4s (and, when told,
//! wrong ones), and the contact sheet is opened in headless Chromium, whose media stack — not
//! ours — must play every clip at the length and size the check recorded.

use super::*;
use crate::hosts::in_ci;
use serde_json::Value;

/// Chromium, or `None` (and a note) where it is missing outside CI.
fn chromium() -> Option<&'static Path> {
    let chromium = Path::new("/usr/bin/chromium");
    if chromium.exists() {
        return Some(chromium);
    }
    assert!(
        !in_ci(),
        "CI is set but /usr/bin/chromium is missing: .ci/run installs it (apt-get install -y chromium)"
    );
    eprintln!("SKIPPED: /usr/bin/chromium is not installed (apt-get install -y chromium)");
    None
}

/// What Chromium saw of each `<video>` on the page at `index`: the page is copied beside itself
/// with a probe script (the contact sheet has none of its own) that waits for every player to
/// load its first frame — the poster the `#t=` fragment asks for — or fail, then writes each
/// player's duration, size, ready state, error and the colour of the frame's centre pixel.
fn probe_players(
    chromium: &Path,
    index: &Path,
) -> Result<(String, Vec<Value>), Box<dyn std::error::Error>> {
    const PROBE: &str = r#"<script>
const players = [...document.querySelectorAll('video')];
Promise.all(players.map(v => new Promise(done => {
  // The frame at the fragment's time may reach the player a moment after `loadeddata` (it
  // seeks there): draw until it is there, for a while.
  const report = (event, tries = 0) => {
    let pixel = null;
    if (v.videoWidth > 0) {
      const canvas = document.createElement('canvas');
      canvas.width = v.videoWidth; canvas.height = v.videoHeight;
      const g = canvas.getContext('2d');
      g.drawImage(v, 0, 0);
      pixel = [...g.getImageData(v.videoWidth >> 1, v.videoHeight >> 1, 1, 1).data];
      if (pixel[3] === 0 && tries < 100) {
        setTimeout(() => report(event, tries + 1), 100);
        return;
      }
    }
    done({ src: v.getAttribute('src'), event, duration: v.duration, width: v.videoWidth,
           height: v.videoHeight, ready: v.readyState, error: v.error && v.error.code, pixel });
  };
  if (v.readyState >= 2) report('ready');
  else { v.addEventListener('loadeddata', () => report('loadeddata'));
         v.addEventListener('error', () => report('error'), true); }
}))).then(found => {
  const out = document.createElement('pre');
  out.id = 'probe'; out.textContent = JSON.stringify(found); document.body.append(out);
});
</script>
</body>"#;
    let page = std::fs::read_to_string(index)?;
    let probe = index.with_file_name("probe.html");
    std::fs::write(&probe, page.replace("</body>", PROBE))?;
    let profile = tempfile::tempdir()?;
    // coreutils' `timeout` bounds a browser that hangs.
    let output = std::process::Command::new("timeout")
        .arg("90")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            // The probe reads frames of files beside the page: same-folder file access.
            "--allow-file-access-from-files",
            // Run the page's timers and loads to completion before the DOM is dumped.
            "--virtual-time-budget=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", probe.display()))
        .output()?;
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dom = String::from_utf8(output.stdout)?;
    let json = dom
        .split_once("<pre id=\"probe\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(json, _)| json.replace("&quot;", "\"").replace("&amp;", "&"))
        .ok_or_else(|| format!("the probe wrote nothing: {dom}"))?;
    Ok((dom, serde_json::from_str(&json)?))
}

/// The player whose source is `file`.
fn player<'a>(players: &'a [Value], file: &str) -> &'a Value {
    players
        .iter()
        .find(|p| p["src"].as_str().is_some_and(|s| s.starts_with(file)))
        .unwrap_or_else(|| panic!("no player for {file} in {players:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contact_sheet_plays_every_clip_in_chromium_at_the_length_and_size_paid_for() -> Test {
    let Some(chromium) = chromium() else {
        return Ok(());
    };
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let (dir, path) = storyboard_dir(
        r#"
        [[shot]]
        name = "sunrise"
        prompt = "Sunrise over <the> hills & a horse."
        [[shot]]
        name = "tall"
        prompt = "A lighthouse at night."
        resolution = "1080p"
        aspect_ratio = "9:16"
        duration = 7
        [[shot]]
        name = "portrait"
        mode = "i2v"
        images = ["ref.png"]
        prompt = "The horse turns its head."
        duration = 3
        [[shot]]
        name = "refused"
        prompt = "Fails [emulator:fail]."
        "#,
    );
    let summary = finished(run_once(&path, &session, &config(dir.path())).await);
    let index = summary.out_dir.join("index.html");
    let (dom, players) = tokio::task::spawn_blocking({
        let index = index.clone();
        move || probe_players(chromium, &index).map_err(|e| e.to_string())
    })
    .await??;

    for row in &summary.rows {
        assert!(
            dom.contains(&format!("data-shot=\"{}\"", row.plan.name)),
            "{} missing from the rendered page",
            row.plan.name
        );
    }
    assert_eq!(
        players.len(),
        3,
        "one player per downloaded clip: {players:#?}"
    );
    // Chromium's own demuxer and decoder: each clip loads its first frame (the poster), at the
    // length and frame its request paid for.
    for (file, seconds, width, height) in [
        ("sunrise.mp4", 5.0, 1280, 720),
        ("tall.mp4", 7.0, 1080, 1920),
        ("portrait.mp4", 3.0, 1280, 720),
    ] {
        let p = player(&players, file);
        assert_eq!(p["error"], Value::Null, "{file}: {p}");
        assert!(
            p["ready"].as_u64().unwrap_or(0) >= 2,
            "{file} drew no frame: {p}"
        );
        let duration = p["duration"].as_f64().unwrap_or(0.0);
        assert!(
            (duration - seconds).abs() <= 0.1,
            "{file}: {duration} s, not {seconds}"
        );
        assert_eq!(
            (p["width"].as_u64(), p["height"].as_u64()),
            (Some(width), Some(height)),
            "{file}"
        );
        let pixel = p["pixel"].as_array().expect("a decoded frame's pixel");
        assert_eq!(pixel.len(), 4, "{file}: {p}");
        assert_eq!(pixel[3], 255, "{file}: an opaque decoded frame: {p}");
    }
    // The check each clip passed is on the sheet, as the page says and as data a script reads.
    for (file, ms, width) in [
        ("sunrise.mp4", "5000", "1280"),
        ("tall.mp4", "7000", "1080"),
    ] {
        let tag = format!(
            "data-verdict=\"matches\" data-file=\"{file}\" data-duration-ms=\"{ms}\" data-width=\"{width}\""
        );
        assert!(dom.contains(&tag), "{tag} missing");
    }
    assert!(
        dom.contains("as paid for: 5.0 s of 1280×720 h264 video with aac audio"),
        "the check, in words"
    );
    assert!(
        dom.contains("Sunrise over &lt;the&gt; hills &amp; a horse."),
        "the prompt, escaped"
    );
    assert!(
        dom.contains("content_policy") || dom.contains("flagged"),
        "the failure is shown"
    );
    assert!(dom.contains("$0.70"), "the cost is shown");
    Ok(())
}

/// Each way a delivered clip can fall short, as the emulator serves it when a prompt asks.
const WRONG: [(&str, &str); 5] = [
    ("short", "duration: 3.0 s, not 5 s"),
    ("other-resolution", "frame: 1920×1080, not 1280×720"),
    ("no-audio", "audio: the file has no audio track"),
    ("truncated", "truncated"),
    ("not-mp4", "not a readable MP4"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_not_as_paid_for_is_kept_reported_with_the_amount_and_never_paid_again() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let mut board = String::from(
        "[defaults]\nduration = 5\nresolution = \"720p\"\n\n[[shot]]\nname = \"good\"\nprompt = \"A good clip.\"\n",
    );
    for (fault, _) in WRONG {
        board.push_str(&format!(
            "\n[[shot]]\nname = \"{fault}\"\nprompt = \"A clip [emulator:clip={fault}].\"\n"
        ));
    }
    let (dir, path) = storyboard_dir(&board);
    let config = config(dir.path());
    let summary = finished(run_once(&path, &session, &config).await);
    assert_eq!(emu.jobs_created(), 6);
    assert_eq!(
        happyhorse_pipeline::clips_not_as_paid_for(&summary.rows),
        WRONG.len()
    );

    let check_of = |summary: &RunSummary, name: &str| {
        let State::Downloaded { files, .. } = state(summary, name) else {
            panic!("{name} is kept as downloaded: {:?}", state(summary, name))
        };
        assert!(
            summary.out_dir.join(&files[0].path).exists(),
            "{name}'s file is kept"
        );
        files[0].check.clone().expect("every clip is checked")
    };
    let good = check_of(&summary, "good");
    assert_eq!(
        good.verdict,
        happyhorse_pipeline::Verdict::Matches,
        "{good:?}"
    );
    for (fault, problem) in WRONG {
        let check = check_of(&summary, fault);
        assert!(check.failed(), "{fault}: {check:?}");
        assert!(
            check
                .summary
                .starts_with("paid for 5 s of 1280×720 video with audio ($0.70), received "),
            "{fault}: {}",
            check.summary
        );
        assert!(
            check.summary.contains(problem) || check.problems.iter().any(|p| p.contains(problem)),
            "{fault}: {check:?}"
        );
    }

    // The manifest says it, per file and in the totals.
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(
        summary.out_dir.join("manifest.json"),
    )?)?;
    assert_eq!(manifest["totals"]["clips_not_as_paid_for"], WRONG.len());
    let short = manifest["shots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "short")
        .unwrap();
    assert_eq!(short["files"][0]["check"]["verdict"], "mismatch");
    assert_eq!(short["files"][0]["check"]["found"]["duration_ms"], 3000);
    let html = std::fs::read_to_string(summary.out_dir.join("index.html"))?;
    assert!(
        html.contains("5 clip(s) not as paid for"),
        "the sheet's header says it"
    );
    assert_eq!(
        html.matches("class=\"shot downloaded not-as-paid-for\"")
            .count(),
        WRONG.len()
    );

    // Nothing is resubmitted for it, now or on the next run: that would pay twice.
    let again = finished(run_once(&path, &session, &config).await);
    assert_eq!(
        emu.jobs_created(),
        6,
        "a wrong clip is never paid for again"
    );
    assert_eq!(
        happyhorse_pipeline::clips_not_as_paid_for(&again.rows),
        WRONG.len()
    );
    Ok(())
}
