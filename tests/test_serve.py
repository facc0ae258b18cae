"""The web pages without a browser: upload checks, translate options, the study's layout, votes and report, the
CLI commands, and a study server killed with SIGKILL keeping every acknowledged vote. The browser drives the same
pages in test_serve_browser.py."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest

pytest.importorskip("starlette", reason="the web tests need the serve extra: pip install 'unpaired[serve]'")

from PIL import Image
from serving import free_port, live_server, post_form, post_multipart, request, train_tiny_runs
from test_cli import assert_error, run_cli

from unpaired.serve.study import (
    Preference,
    Study,
    StudyError,
    VoteStore,
    create_study,
    lay_out_pairs,
    preferences,
    wilson_interval,
    write_report,
)
from unpaired.serve.study_app import StudyApp
from unpaired.serve.translate_app import TranslateApp, load_models
from unpaired.serve.uploads import UploadError, UploadLimits, read_image, sniff_format


def png(size=(20, 16), mode="RGB", color=(200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 0).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png() -> bytes:
    """A real decompression bomb: 6000 x 6000 = 36 million pixels of zeros in a ~36 kB PNG."""
    buffer = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return train_tiny_runs(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def translate_url(runs):
    app = TranslateApp(load_models([runs["unit"], runs["munit"]], device="cpu"),
                       UploadLimits(max_bytes=200_000, max_pixels=1_000_000))
    with live_server(app.app) as url:
        yield url


@pytest.fixture
def study(runs, tmp_path) -> tuple[Study, str, list[str]]:
    created = create_study([runs[m] for m in ("unit", "cyclegan", "munit")], runs["unit"].parent / "data" / "testA",
                           "Which looks more like B?", tmp_path / "study", seed=3, raters=3, device="cpu",
                           progress=False)
    return created.study, created.key, created.raters


# -------------------- uploads


def test_format_is_sniffed_from_the_content_not_the_name():
    assert sniff_format(png()) == "PNG"
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
    assert sniff_format(buffer.getvalue()) == "JPEG"
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="WEBP")
    assert sniff_format(buffer.getvalue()) == "WEBP"
    assert sniff_format(b"GIF89a....") is None and sniff_format(b"%PDF-1.7") is None


@pytest.mark.parametrize(("data", "status", "words"), [
    (b"", 400, "no file was uploaded"),
    (b"#!/bin/sh\necho hello\n", 415, "not an image"),
    (png()[:60], 400, "cannot be decoded"),
    (b"\x89PNG\r\n\x1a\n" + b"x" * 300_000, 413, "over the limit"),
])
def test_bad_uploads_are_refused_with_a_reason(data, status, words):
    with pytest.raises(UploadError, match=words) as refused:
        read_image(data, UploadLimits(max_bytes=200_000), "photo")
    assert refused.value.status == status and "photo" in str(refused.value)


def test_a_decompression_bomb_is_refused_from_its_header():
    data = bomb_png()
    assert len(data) < 100_000
    with mock.patch.object(Image.Image, "load", side_effect=AssertionError("decoded")), \
            pytest.raises(UploadError, match="36,000,000 pixels is over the limit of 25,000,000") as refused:
        read_image(data, UploadLimits())  # refused before any pixel is decoded
    assert refused.value.status == 413
    # PIL's own guard is a refusal too when the pixel limit is set above it
    with pytest.raises(UploadError, match="decompression bomb"), mock.patch.object(Image, "MAX_IMAGE_PIXELS", 10**6):
        read_image(data, UploadLimits(max_pixels=10**9))


# -------------------- the translate page over HTTP


def test_translate_returns_a_png_of_the_training_size(translate_url):
    status, headers, body = post_multipart(f"{translate_url}/api/translate", {"model": "0", "direction": "a2b"},
                                           {"image": ("x.png", png((32, 24)))})
    assert status == 200 and headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(body)).size == (20, 16)  # shorter side 16, sides multiples of 4
    assert "default-src 'none'" in headers["content-security-policy"]


def test_random_style_repeats_with_its_seed_and_differs_without(translate_url):
    def translate(fields):
        status, _, body = post_multipart(f"{translate_url}/api/translate", {"model": "1", **fields},
                                         {"image": ("x.png", png())})
        assert status == 200, body[-300:]
        return body

    assert translate({"style": "random", "seed": "7"}) == translate({"seed": "7"})
    assert translate({"style": "random", "seed": "7"}) != translate({"style": "random", "seed": "8"})


def test_reference_style_needs_a_reference_upload(translate_url):
    status, _, body = post_multipart(f"{translate_url}/api/translate", {"model": "1", "style": "reference"},
                                     {"image": ("x.png", png()), "reference": ("r.png", png(color=(0, 90, 0)))})
    assert status == 200 and body.startswith(b"\x89PNG")
    status, _, body = post_multipart(f"{translate_url}/api/translate", {"model": "1", "style": "reference"},
                                     {"image": ("x.png", png())})
    assert status == 400 and b"the reference image: no file was uploaded" in body


@pytest.mark.parametrize(("fields", "words"), [
    ({"model": "0", "style": "random"}, "cannot translate with a random style"),
    ({"model": "5"}, "field &#x27;model&#x27; must be a whole number from 0 to 1"),
    ({"model": "../../etc/passwd"}, "must be a whole number"),
    ({"model": "0", "style": "/etc/passwd"}, "unknown style"),
    ({"model": "0", "direction": "x2y"}, "translates a2b, b2a only"),
])
def test_bad_form_values_are_refused_with_a_reason(translate_url, fields, words):
    status, _, body = post_multipart(f"{translate_url}/translate", fields, {"image": ("x.png", png())})
    assert status == 400 and words in body.decode()


def test_a_path_in_a_form_field_is_never_opened(translate_url, tmp_path):
    target = tmp_path / "secret_input.png"
    target.write_bytes(png())
    opened = []

    def audit(event, args):
        if event == "open" and args and "secret_input" in str(args[0]):
            opened.append(args[0])

    sys.addaudithook(audit)  # cannot be removed: it records only this test's file
    for fields in ({"image": str(target)}, {"image": f"file://{target}"}, {"style": "reference",
                                                                             "reference": str(target)}):
        status, _, body = post_multipart(f"{translate_url}/translate", {"model": "1", **fields},
                                         {} if "image" in fields else {"image": ("x.png", png())})
        assert status == 400 and b"no file was uploaded" in body and b"a typed name or path is not read" in body
    assert opened == []


def test_the_byte_limit_is_enforced_while_the_body_arrives(translate_url):
    status, _, body = post_multipart(f"{translate_url}/translate", {"model": "0"},
                                     {"image": ("big.png", b"\x89PNG" + os.urandom(400_000))})
    assert status == 413 and b"over the limit of 200,000 bytes" in body


def test_the_page_answers_while_a_translation_runs(runs):
    app = TranslateApp(load_models([runs["unit"]], device="cpu"))
    started, release = threading.Event(), threading.Event()
    work = TranslateApp._work

    def slow_work(*args):
        started.set()
        release.wait(20)
        return work(*args)

    with live_server(app.app) as url, mock.patch.object(TranslateApp, "_work", staticmethod(slow_work)):
        results = []
        client = threading.Thread(target=lambda: results.append(
            post_multipart(f"{url}/api/translate", {"model": "0"}, {"image": ("x.png", png())})))
        client.start()
        assert started.wait(20)
        began = time.perf_counter()
        status, _, body = request(f"{url}/")
        waited = time.perf_counter() - began
        release.set()
        client.join(20)
    assert status == 200 and b"<form" in body and waited < 2, waited
    assert results[0][0] == 200


# -------------------- the study


def test_pairs_cover_every_two_runs_per_input_on_balanced_random_sides():
    import random

    pairs = lay_out_pairs(40, 3, random.Random(0))
    assert len(pairs) == 40 * 3
    assert Counter((i, frozenset((a, b))) for i, a, b in pairs) == {(i, frozenset(p)): 1 for i in range(40)
                                                                    for p in ((0, 1), (0, 2), (1, 2))}
    left_first = sum(a < b for _, a, b in pairs)
    assert 40 < left_first < 80  # each side about half the time
    assert [i for i, _, _ in pairs] != sorted(i for i, _, _ in pairs)  # shuffled
    assert pairs == lay_out_pairs(40, 3, random.Random(0))  # seeded


def test_study_folder_records_the_layout_and_keeps_only_the_key_hash(study):
    opened, key, raters = study
    record = (opened.folder / "study.json").read_text()
    assert key not in record and opened.key_matches(key)
    assert not opened.key_matches(key[:-1] + ("y" if key[-1] != "y" else "z")) and not opened.key_matches("")
    assert len(opened.pairs) == 3 * 3 and opened.seed == 3
    tokens = [pair[side]["token"] for pair in opened.pairs for side in ("input", "left", "right")]
    assert len(set(tokens)) == len(tokens)  # a fresh token for every image of every pair
    for pair in opened.pairs:
        assert Image.open(opened.images[pair["left"]["token"]]).size == Image.open(
            opened.images[pair["right"]["token"]]).size  # no size tells the runs apart
    assert (opened.folder / "raters.txt").read_text().split() == raters


def test_one_vote_per_rater_and_pair(study):
    opened, _, raters = study
    store = opened.store()
    pair = opened.pairs[0]["id"]
    assert store.vote(raters[0], pair, "left")
    assert not store.vote(raters[0], pair, "right")
    assert store.vote(raters[1], pair, "right")
    with pytest.raises(StudyError, match="not a rater"):  # the schema itself refuses a token that is no rater
        store.vote("stranger", pair, "left")
    assert store.votes() == [(pair, "left"), (pair, "right")]
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_wilson_interval_matches_its_formula_at_known_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0 and round(wilson_interval(0, 10)[1], 4) == 0.2775
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_preferences_map_sides_back_to_runs_and_keep_not_sure_apart(study):
    opened, _, _ = study
    votes = []
    for pair in opened.pairs:  # the first run always chosen where it is shown; not sure where it is not
        first = min(pair["left_run"], pair["right_run"])
        if first == 0:
            votes.append((pair["id"], "left" if pair["left_run"] == 0 else "right"))
        else:
            votes.append((pair["id"], "unsure"))
    rows = {(r.first, r.second): r for r in preferences(opened, votes)}
    labels = [run["label"] for run in opened.runs]
    assert rows[(labels[0], labels[1])] == Preference(labels[0], labels[1], 3, 0, 0)
    assert rows[(labels[0], labels[2])].share == 1.0
    assert rows[(labels[1], labels[2])] == Preference(labels[1], labels[2], 0, 0, 3)
    assert rows[(labels[1], labels[2])].share is None


def test_report_writes_markdown_chart_and_json(study, tmp_path):
    opened, _, raters = study
    store = opened.store()
    for rater in raters:
        for pair in opened.pairs[:4]:
            store.vote(rater, pair["id"], "left")
    store.close()
    paths = write_report(opened, tmp_path / "report")
    text = paths["markdown"].read_text()
    assert "12 votes" in text and "Wilson" in text and "not sure" in text
    assert Image.open(paths["chart"]).size[0] > 400


def test_study_pages_and_votes_over_http(study):
    opened, key, raters = study
    with live_server(StudyApp(opened).app) as url:
        status, _, page = request(f"{url}/r/{raters[0]}")
        pair = re.search(rb'name="pair" value="([^"]+)"', page).group(1).decode()
        assert status == 200 and b"Pair 1 of 9" in page
        assert post_form(f"{url}/r/{raters[0]}/vote", {"pair": pair, "choice": "left"})[0] == 303
        status, _, page = post_form(f"{url}/r/{raters[0]}/vote", {"pair": pair, "choice": "right"})
        assert status == 409 and b"already voted on this pair" in page
        assert post_form(f"{url}/r/{raters[0]}/vote", {"pair": pair, "choice": "maybe"})[0] == 400
        assert post_form(f"{url}/r/nobody/vote", {"pair": pair, "choice": "left"})[0] == 404
        assert request(f"{url}/img/{'x' * 22}")[0] == 404
        assert post_form(f"{url}/results", {"key": "guess"})[0] == 403
        status, _, page = post_form(f"{url}/results", {"key": key})
        assert status == 200 and opened.runs[0]["label"].encode() in page


def test_study_commands(runs, tmp_path):
    out = tmp_path / "study"
    code, printed, err = run_cli("study", "create", "--runs", runs["unit"], runs["cyclegan"], "--inputs",
                                 runs["unit"].parent / "data" / "testA", "--question", "Which is more B?", "--out",
                                 out, "--seed", "1", "--raters", "2", "--device", "cpu")
    assert code == 0, err
    key = re.search(r"results key \(shown once, only its hash is kept\): (\S+)", printed).group(1)
    assert Study.open(out).key_matches(key) and "3 pairs" in printed
    code, printed, err = run_cli("study", "report", out)
    assert code == 0 and "0 votes" in printed and (out / "report" / "report.png").is_file()
    assert_error(run_cli("study", "create", "--runs", runs["unit"], "--inputs", out, "--question", "q", "--out",
                         tmp_path / "s2"), "at least two runs")
    assert_error(run_cli("study", "report", tmp_path), "not a study folder")


def test_web_commands_without_the_extra_say_what_to_install(runs):
    import importlib.util

    real = importlib.util.find_spec
    with mock.patch.object(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name)):
        assert_error(run_cli("serve", "--checkpoint", runs["unit"]), "pip install 'unpaired[serve]'", "uvicorn")


def test_votes_acknowledged_before_sigkill_survive_a_restart(study):
    opened, _, raters = study
    port = free_port()
    command = [sys.executable, "-m", "unpaired.cli", "study", "serve", str(opened.folder), "--port", str(port)]

    def start() -> subprocess.Popen:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if request(f"http://127.0.0.1:{port}/")[0] == 200:
                    return server
            except OSError:
                time.sleep(0.1)
        server.kill()
        raise AssertionError(f"study server did not start: {server.stderr.read().decode()[-500:]}")

    server = start()
    acknowledged = 0
    for rater in raters:
        for pair in opened.pairs[:5]:
            status, _, _ = post_form(f"http://127.0.0.1:{port}/r/{rater}/vote", {"pair": pair["id"], "choice": "left"})
            acknowledged += status == 303
    os.kill(server.pid, signal.SIGKILL)
    server.wait(10)
    assert acknowledged == 15
    server = start()  # the restarted server refuses them again: they are there
    try:
        status, _, _ = post_form(f"http://127.0.0.1:{port}/r/{raters[0]}/vote", {"pair": opened.pairs[0]["id"],
                                                                                   "choice": "right"})
        assert status == 409
    finally:
        server.terminate()
        server.wait(10)
    assert len(VoteStore(opened.folder / "votes.sqlite").votes()) == acknowledged


def test_study_errors_are_one_line(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudyError, match="no images"):
        create_study([runs["unit"], runs["cyclegan"]], tmp_path / "empty", "q", tmp_path / "s", device="cpu")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(StudyError, match="not an empty folder"):
        create_study([runs["unit"], runs["cyclegan"]], tmp_path, "q", tmp_path / "used", device="cpu")


def test_an_address_in_use_is_one_error_line(study):
    import socket

    opened, _, _ = study
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_error(run_cli("study", "serve", opened.folder, "--port", port), f"127.0.0.1:{port}",
                     "cannot listen there", "choose another --port")
