"""Platform transcripts: WebVTT as Zoom and Teams write it, and SRT."""

from __future__ import annotations

import pytest

from core.domain import Utterance
from core.errors import InputError
from core.transcripts import load_platform_transcript, parse_srt, parse_webvtt

TEAMS_VTT = """WEBVTT

8f3c2a1e-5b6d-4c7e-9f10-112233445566/12-0
00:00:01.200 --> 00:00:04.800
<v Maya Chen>Thanks for making time today, Sam.</v>

8f3c2a1e-5b6d-4c7e-9f10-112233445566/15-0
00:00:05.000 --> 00:00:07.250
<v Sam Patel>Happy to. We&#39;re looking at Q3 &amp; Q4.</v>

8f3c2a1e-5b6d-4c7e-9f10-112233445566/16-0
00:00:07.250 --> 00:00:09.000
<v Sam Patel>Budget is still open.</v>
"""

ZOOM_VTT = """WEBVTT

1
00:00:00.500 --> 00:00:03.000
Maya Chen: Hi Sam, can you hear me?

2
00:00:03.100 --> 00:00:05.900
Sam Patel: Yes, loud and clear.
"""


def test_teams_voice_tags_give_speaker_text_and_times():
    utterances = parse_webvtt(TEAMS_VTT, "teams.vtt")

    assert utterances == [
        Utterance(1.2, 4.8, "Thanks for making time today, Sam.", "Maya Chen"),
        Utterance(5.0, 7.25, "Happy to. We're looking at Q3 & Q4.", "Sam Patel"),
        # consecutive cues by the same speaker stay separate
        Utterance(7.25, 9.0, "Budget is still open.", "Sam Patel"),
    ]


def test_zoom_name_prefix_style_with_numeric_cue_ids():
    utterances = parse_webvtt(ZOOM_VTT, "zoom.vtt")

    assert [(u.start, u.end, u.speaker_label, u.text) for u in utterances] == [
        (0.5, 3.0, "Maya Chen", "Hi Sam, can you hear me?"),
        (3.1, 5.9, "Sam Patel", "Yes, loud and clear."),
    ]


def test_short_timestamps_cue_settings_tags_entities_and_multiline_text():
    text = """WEBVTT - exported by a meeting tool
Kind: captions

NOTE this note spans
two lines and is skipped

STYLE
::cue { color: yellow }

intro
01:02.000 --> 01:04.500 align:start position:10% line:0
<v.loud Maya Chen>So <i>what</i> does <c.yellow>success</c>
<00:01:03.000>look&nbsp;like &lt;for you&gt;?</v>
"""
    (utterance,) = parse_webvtt(text, "x.vtt")

    assert utterance == Utterance(62.0, 64.5, "So what does success look like <for you>?",
                                  "Maya Chen")


def test_long_hours_and_crlf_and_bom():
    text = "\ufeffWEBVTT\r\n\r\n100:00:01.000 --> 100:00:02.000\r\n<v Sam>late\r\nnight</v>\r\n"

    assert parse_webvtt(text, "x.vtt") == [Utterance(360001.0, 360002.0, "late night", "Sam")]


def test_voice_tag_wins_over_colon_prefix_and_may_stay_unclosed():
    text = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v Maya Chen>Agenda: pricing and timing\n"

    (utterance,) = parse_webvtt(text, "x.vtt")

    assert utterance.speaker_label == "Maya Chen"
    assert utterance.text == "Agenda: pricing and timing"


def test_cue_with_two_voices_yields_one_utterance_per_voice():
    text = "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v Maya>Right?</v>\n<v Sam>Right.</v>\n"

    assert parse_webvtt(text, "x.vtt") == [Utterance(1.0, 3.0, "Right?", "Maya"),
                                           Utterance(1.0, 3.0, "Right.", "Sam")]


def test_text_without_speaker_and_urls_are_not_taken_for_speakers():
    text = ("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nsee https://example.com/pricing\n\n"
            "00:00:02.000 --> 00:00:03.000\nthis is a long sentence that ends: with a colon\n")

    assert [(u.speaker_label, u.text) for u in parse_webvtt(text, "x.vtt")] == [
        (None, "see https://example.com/pricing"),
        (None, "this is a long sentence that ends: with a colon"),
    ]


def test_utterances_are_sorted_by_start_and_empty_cues_dropped():
    text = ("WEBVTT\n\n00:00:05.000 --> 00:00:06.000\n<v B>second</v>\n\n"
            "00:00:01.000 --> 00:00:02.000\n<v A>first</v>\n\n"
            "00:00:03.000 --> 00:00:04.000\n<c></c>\n")

    assert [u.text for u in parse_webvtt(text, "x.vtt")] == ["first", "second"]


@pytest.mark.parametrize(("text", "line", "words"), [
    # a malformed timestamp on line 7
    ("WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\nfine\n\n00:00:03.00 --> 00:00:04.000\nbad\n",
     7, "malformed cue timing"),
    ("WEBVTT\n\n2\n00:00:01.000 -> 00:00:02.000\nbad arrow\n", 4, "malformed cue timing"),
    ("WEBVTT\n\n00:00:05.000 --> 00:00:04.000\nbackwards\n", 3, "ends"),
    ("WEBVTT\n\n00:00:75.000 --> 00:00:76.000\nno such second\n", 3, "below 60"),
    ("Hello\n\n00:00:01.000 --> 00:00:02.000\nx\n", 1, "WEBVTT"),
    ("WEBVTT\n00:00:01.000 --> 00:00:02.000\nno blank line\n", 2, "blank line"),
    ("WEBVTT\n\njust some words\n", 3, "outside a cue"),
])
def test_malformed_webvtt_names_file_and_line(text, line, words):
    with pytest.raises(InputError) as caught:
        parse_webvtt(text, "calls/demo.vtt")

    assert caught.value.file == "calls/demo.vtt"
    assert caught.value.line == line
    assert words in caught.value.message
    assert caught.value.message.startswith(f"calls/demo.vtt:{line}: ")


@pytest.mark.parametrize("text", ["WEBVTT\n", "WEBVTT\n\nNOTE only a note\n", ""])
def test_webvtt_without_cues_is_an_error(text):
    with pytest.raises(InputError, match="no cues|WEBVTT") as caught:
        parse_webvtt(text, "empty.vtt")

    assert caught.value.file == "empty.vtt"


def test_srt_with_and_without_speaker_prefix():
    text = ("1\n00:00:01,000 --> 00:00:02,500\n<i>Maya Chen:</i> Hello\nthere\n\n"
            "2\n00:00:03,000 --> 00:00:04,000\n{\\an8}Background music &amp; noise\n\n"
            "3\n00:00:00,250 --> 00:00:00,750\nSam Patel: Hi!\n")

    assert parse_srt(text, "x.srt") == [
        Utterance(0.25, 0.75, "Hi!", "Sam Patel"),
        Utterance(1.0, 2.5, "Hello there", "Maya Chen"),
        Utterance(3.0, 4.0, "Background music & noise", None),
    ]


def test_srt_tolerates_bom_crlf_and_missing_cue_numbers():
    text = "\ufeff00:00:01,000 --> 00:00:02,000\r\nSam: yes\r\n\r\n\r\n"

    assert parse_srt(text, "x.srt") == [Utterance(1.0, 2.0, "yes", "Sam")]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:03 --> 00:00:04,000\nbad\n", 6,
     "malformed cue timing"),
    ("1\n00:00:09,000 --> 00:00:02,000\nbackwards\n", 2, "ends"),
    ("1\n00:00:01,000 --> 00:00:02,000\nok\n\nstray paragraph\n", 5, "malformed cue timing"),
])
def test_malformed_srt_names_file_and_line(text, line, words):
    with pytest.raises(InputError) as caught:
        parse_srt(text, "demo.srt")

    assert (caught.value.file, caught.value.line) == ("demo.srt", line)
    assert words in caught.value.message


def test_srt_without_cues_is_an_error():
    with pytest.raises(InputError, match="no cues"):
        parse_srt("\n\n", "empty.srt")


def test_load_platform_transcript_picks_the_parser_by_extension(tmp_path):
    (tmp_path / "a.VTT").write_text(ZOOM_VTT, encoding="utf-8")
    (tmp_path / "b.srt").write_bytes(b"1\r\n00:00:01,000 --> 00:00:02,000\r\nSam: yes\r\n")

    assert [u.speaker_label for u in load_platform_transcript(tmp_path / "a.VTT")] == [
        "Maya Chen", "Sam Patel"]
    assert load_platform_transcript(str(tmp_path / "b.srt")) == [
        Utterance(1.0, 2.0, "yes", "Sam")]


def test_load_platform_transcript_errors_name_the_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "latin1.vtt").write_bytes(
        b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nCaf\xe9\n")
    (tmp_path / "broken.vtt").write_text("WEBVTT\n\n00:00:01.000 --> nonsense\nx\n",
                                         encoding="utf-8")

    with pytest.raises(InputError, match="unsupported transcript format '.txt'") as caught:
        load_platform_transcript(tmp_path / "notes.txt")
    assert caught.value.file == str(tmp_path / "notes.txt")

    with pytest.raises(InputError, match="not found"):
        load_platform_transcript(tmp_path / "missing.vtt")

    with pytest.raises(InputError, match="UTF-8") as caught:
        load_platform_transcript(tmp_path / "latin1.vtt")
    assert caught.value.line == 4

    with pytest.raises(InputError) as caught:
        load_platform_transcript(tmp_path / "broken.vtt")
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "broken.vtt"), 3)
