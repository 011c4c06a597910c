"""The row parser: fast path == strict path, every accepted variant, every bad row named."""

from __future__ import annotations

import gzip
import pickle
import warnings
import zlib

import numpy as np
import pytest

from fitlab import (
    CLASS_NAMES,
    BadRowsWarning,
    CSVFormatError,
    classes_from_csv,
    load_csv,
    make_synthetic_csv,
    parse_row,
)
from fitlab.data import csvrows, encode_labels, label_codes
from fitlab.data.rowindex import index_rows

SIZE = 4  # 48 values a row: tiny files, every code path


@pytest.fixture
def clean(tmp_path):
    return make_synthetic_csv(tmp_path / "clean.csv", rows=7, size=SIZE, seed=3)


def _lines(path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _write(path, lines: list[bytes], end=b"\n", final=True) -> None:
    path.write_bytes(end.join(lines) + (end if final else b""))


def test_parse_row_gives_label_and_uint8_values():
    label, values = parse_row("tulip,0,7,10,99,100,255\r\n")
    assert label == "tulip"
    assert values.dtype == np.uint8
    assert values.tolist() == [0, 7, 10, 99, 100, 255]


def test_leading_zeros_are_base_10_integers():
    assert parse_row(b"iris,007,0255,000", values=3)[1].tolist() == [7, 255, 0]


@pytest.mark.parametrize("seed", range(5))
def test_fast_path_matches_python_int_on_random_rows(seed):
    rng = np.random.default_rng(seed)
    # Every width of number, at every alignment: values drawn to favour 0, 9, 10, 99, 100, 255.
    values = rng.choice([0, 1, 9, 10, 55, 99, 100, 199, 254, 255], size=(9, 300)).astype(np.uint8)
    parts = [b",".join(str(v).encode() for v in row) for row in values]
    fast = csvrows.decode_joined(csvrows.join_rows(parts), len(parts), 300)
    assert fast is not None
    np.testing.assert_array_equal(fast, values)
    expected = np.array([[int(x) for x in p.split(b",")] for p in parts])
    np.testing.assert_array_equal(fast, expected)


def test_load_csv_shapes_and_labels(clean):
    images, labels = load_csv(clean)
    assert images.shape == (7, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert labels.tolist() == [CLASS_NAMES[i % 3] for i in range(7)]
    first = np.array([int(x) for x in _lines(clean)[0].split(b",")[1:]], dtype=np.uint8)
    np.testing.assert_array_equal(images[0].ravel(), first)


def test_load_csv_size_must_match(clean):
    with pytest.raises(CSVFormatError, match="line 1: 48 values after the label, expected 12"):
        load_csv(clean, size=2)


@pytest.mark.parametrize(
    "variant",
    ["crlf", "bom", "blank_lines", "gzip", "no_final_newline", "all_at_once"],
)
def test_accepted_variants_give_the_clean_arrays(clean, tmp_path, variant):
    lines = _lines(clean)
    path = tmp_path / "variant.csv"
    if variant == "crlf":
        _write(path, lines, end=b"\r\n")
    elif variant == "bom":
        path.write_bytes(csvrows.BOM + clean.read_bytes())
    elif variant == "blank_lines":
        _write(path, [b""] + lines[:3] + [b"", b"  \t", b"\r"] + lines[3:] + [b""])
    elif variant == "gzip":
        path = tmp_path / "variant.csv.gz"
        path.write_bytes(gzip.compress(clean.read_bytes()))
    elif variant == "no_final_newline":
        _write(path, lines, final=False)
    else:  # every variant in one file, gzip-compressed
        path = tmp_path / "variant.csv.gz"
        payload = csvrows.BOM + b"\r\n".join(lines[:2] + [b""] + lines[2:])
        path.write_bytes(gzip.compress(payload))
    images, labels = load_csv(path)
    ref_images, ref_labels = load_csv(clean)
    np.testing.assert_array_equal(images, ref_images)
    assert labels.tolist() == ref_labels.tolist()
    assert classes_from_csv(path) == classes_from_csv(clean)


def _bad_row(clean_line: bytes, kind: str) -> bytes:
    label, *values = clean_line.split(b",")
    if kind == "too_few":
        return b",".join([label] + values[:-1])
    if kind == "too_many":
        return b",".join([label] + values + [b"1"])
    if kind == "not_integer":
        return b",".join([label] + values[:5] + [b"1.5"] + values[6:])
    if kind == "hex":
        return b",".join([label] + values[:5] + [b"0x1f"] + values[6:])
    if kind == "out_of_range":
        return b",".join([label] + values[:5] + [b"256"] + values[6:])
    if kind == "negative":
        return b",".join([label] + values[:5] + [b"-3"] + values[6:])
    if kind == "empty_field":
        return b",".join([label] + values[:5] + [b""] + values[6:])
    if kind == "empty_label":
        return b",".join([b""] + values)
    if kind == "space":
        return b",".join([label] + values[:5] + [b" 12"] + values[6:])
    if kind == "garbage":
        return bytes(range(256)) * 3
    raise AssertionError(kind)


BAD_KINDS = {
    "too_few": "47 values after the label, expected 48",
    "too_many": "49 values after the label, expected 48",
    "not_integer": r"b'1.5' in column 7 is not a base-10 integer",
    "hex": r"b'0x1f' in column 7 is not a base-10 integer",
    "out_of_range": "value 256 in column 7 is outside 0–255",
    "negative": "value -3 in column 7 is outside 0–255",
    "empty_field": "column 7 is empty",
    "empty_label": r"the label \(column 1\) is empty",
    "space": r"b' 12' in column 7 is not a base-10 integer",
    "garbage": "",
}


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_bad_row_names_file_and_line(clean, tmp_path, kind):
    lines = _lines(clean)
    # A blank line first: the reported line is the file's line, not the row's index.
    lines = [b""] + lines[:3] + [_bad_row(lines[3], kind)] + lines[4:]
    path = tmp_path / "bad.csv"
    _write(path, lines)
    with pytest.raises(CSVFormatError, match=rf"bad\.csv, line 5: {BAD_KINDS[kind]}") as info:
        load_csv(path)
    assert info.value.line == 5 and info.value.path == str(path)
    assert isinstance(info.value, ValueError)


def test_row_cut_off_at_end_of_file(clean, tmp_path):
    payload = clean.read_bytes()
    path = tmp_path / "cut.csv"
    path.write_bytes(payload[: len(payload) - 40])  # mid-row, no final newline
    with pytest.raises(CSVFormatError, match=r"line 7: the file ends in the middle of this row"):
        load_csv(path)


def test_skip_counts_and_reports_bad_rows(clean, tmp_path):
    lines = _lines(clean)
    lines[1] = _bad_row(lines[1], "out_of_range")
    lines[4] = _bad_row(lines[4], "empty_label")
    path = tmp_path / "bad.csv"
    _write(path, lines)
    with pytest.warns(BadRowsWarning, match=r"skipped 2 bad row\(s\) of .*line 2: .*; line 5: "):
        result = load_csv(path, on_bad_row="skip")
    images, labels = result
    ref, ref_labels = load_csv(clean)
    keep = [0, 2, 3, 5, 6]
    np.testing.assert_array_equal(images, ref[keep])
    assert labels.tolist() == ref_labels[keep].tolist()
    assert [e.line for e in result.skipped] == [2, 5]


def test_clean_file_warns_nothing(clean):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_csv(clean, on_bad_row="skip").skipped == []


def test_on_bad_row_is_checked(clean):
    with pytest.raises(ValueError, match="on_bad_row must be 'raise' or 'skip'"):
        load_csv(clean, on_bad_row="ignore")


def test_error_survives_pickling_for_worker_processes():
    error = pickle.loads(pickle.dumps(CSVFormatError("a.csv", 3, "bad value")))
    assert isinstance(error, CSVFormatError)
    assert (error.path, error.line, str(error)) == ("a.csv", 3, "a.csv, line 3: bad value")


def test_classes_sorted_like_label_binarizer(tmp_path):
    from sklearn.preprocessing import LabelBinarizer

    path = make_synthetic_csv(tmp_path / "t.csv", rows=17, size=1, classes=CLASS_NAMES)
    classes = classes_from_csv(path)
    assert classes == sorted(CLASS_NAMES)
    assert classes == LabelBinarizer().fit(list(CLASS_NAMES)).classes_.tolist()


def test_label_codes_are_positions_in_the_class_list_and_minus_one_when_unknown():
    codes = label_codes(["tulip", "rose", "iris", "tulip"], ["iris", "tulip"])
    assert codes.dtype == np.int64 and codes.tolist() == [1, -1, 0, 1]
    assert label_codes([], ["iris"]).tolist() == []


def test_encode_labels_names_unknown_label_and_line():
    codes = encode_labels(["tulip", "iris"], ["iris", "tulip"], "t.csv", [8, 9])
    assert codes.tolist() == [1, 0]
    with pytest.raises(CSVFormatError, match=r"t\.csv, line 9: unknown label 'rose'") as info:
        encode_labels(["iris", "rose"], ["iris", "tulip"], "t.csv", [8, 9])
    assert (info.value.path, info.value.line) == ("t.csv", 9)
    with pytest.raises(CSVFormatError, match=r"^t\.csv: unknown label 'rose'"):
        encode_labels(["rose"], ["iris"], "t.csv")  # no line numbers known


def test_index_points_at_each_rows_values(clean, tmp_path):
    lines = _lines(clean)
    path = tmp_path / "v.csv"
    path.write_bytes(csvrows.BOM + b"\r\n".join(lines[:2] + [b"", b" "] + lines[2:]))
    index = index_rows(path)
    assert index.lines.tolist() == [1, 2, 5, 6, 7, 8, 9]
    assert index.values == 48 and index.cut_off  # written without a final line end
    payload = path.read_bytes()
    for offset, length, line in zip(index.offsets, index.lengths, lines, strict=True):
        assert payload[offset : offset + length] == line.split(b",", 1)[1]


@pytest.mark.realdata
def test_real_csvs_load(flowers17_csvs):
    train, test, classes = flowers17_csvs
    x_train, y_train = load_csv(train)
    x_test, y_test = load_csv(test)
    assert x_train.shape == (1020, 64, 64, 3) and x_test.shape == (340, 64, 64, 3)
    assert classes_from_csv(train) == sorted(classes)
    counts = {c: int((y_train == c).sum()) for c in classes}
    assert set(counts.values()) == {60}
    assert {int((y_test == c).sum()) for c in classes} == {20}
    # The tutorial's own reading of every row, one int() per value, agrees.
    rows = [line.split(",") for line in test.read_text().splitlines()]
    assert y_test.tolist() == [row[0] for row in rows]
    naive = np.array([[int(v) for v in row[1:]] for row in rows], dtype=np.uint8)
    np.testing.assert_array_equal(x_test.reshape(340, -1), naive)


# -- one error contract: every malformed input is a CSVFormatError (file, line, what to do) -------
def _with_row(clean, tmp_path, row: bytes, at: int = 3, name: str = "bad.csv"):
    """``clean`` with line ``at`` (1-based) replaced by ``row``; returns the path."""
    lines = _lines(clean)
    lines[at - 1] = row
    path = tmp_path / name
    _write(path, lines)
    return path


def _values_with(clean, field: bytes, column: int = 3) -> bytes:
    """The first row of ``clean`` with its value in ``column`` (1-based, label = 1) replaced."""
    fields = _lines(clean)[0].split(b",")
    fields[column - 1] = field
    return b",".join(fields)


@pytest.mark.parametrize(
    "field, reason",
    [
        (b"0" * 5000, r"value 0{20}… \(5,000 digits\) in column 3 has more than 8 digits"),
        (b"0" * 4300 + b"7", r"value 0{20}… \(4,301 digits\) in column 3 has more than 8 digits"),
        (b"9" * 5000, r"value 9{20}… \(5,000 digits\) in column 3 is outside 0–255"),
        (b"000000255", r"value 000000255 in column 3 has more than 8 digits"),
        (b"-" + b"1" * 5000, r"value -1{20}… \(5,000 digits\) in column 3 is outside 0–255"),
    ],
)
def test_a_value_of_thousands_of_digits_is_a_bad_row_not_a_crash(clean, tmp_path, field, reason):
    # Today's int() refused such a token with "Exceeds the limit (4300 digits)": no file, no line,
    # and on_bad_row="skip" did not skip it.
    path = _with_row(clean, tmp_path, _values_with(clean, field))
    with pytest.raises(
        CSVFormatError, match=rf"bad\.csv, line 3: {reason}\. Fix or delete"
    ) as info:
        load_csv(path)
    assert info.value.line == 3
    with pytest.warns(BadRowsWarning, match=rf"line 3: {reason}"):
        result = load_csv(path, on_bad_row="skip")
    np.testing.assert_array_equal(result[0], np.delete(load_csv(clean)[0], 2, 0))
    with pytest.raises(CSVFormatError, match=rf"line 9: {reason}\. Fix the row\.$"):
        parse_row(_values_with(clean, field), path="x.csv", line_no=9)


def test_leading_zeros_parse_up_to_max_digits():
    assert csvrows.MAX_DIGITS == 8
    row = b"iris,007,00000255,0000000,0"
    assert parse_row(row, values=4)[1].tolist() == [7, 255, 0, 0]


def test_long_tokens_are_quoted_cleanly_and_cut_with_an_ellipsis(clean, tmp_path):
    # Today: "value 99999999999999999999' in column 3" (a stray quote, and no sign of the cut).
    path = _with_row(clean, tmp_path, _values_with(clean, b"9" * 1_000_000))
    with pytest.raises(CSVFormatError) as info:
        load_csv(path)
    assert "value 99999999999999999999… (1,000,000 digits) in column 3 is outside" in str(
        info.value
    )
    assert "'" not in info.value.reason and len(str(info.value)) < 400
    path = _with_row(clean, tmp_path, _values_with(clean, b"x" * 1_000_000))
    with pytest.raises(CSVFormatError) as info:
        load_csv(path)
    assert info.value.reason == (
        "b'xxxxxxxxxxxxxxxxxxxx'… (1,000,000 bytes) in column 3 is not a base-10 integer"
    )
    path = _with_row(clean, tmp_path, b"\xff" * 100_000 + b",1")
    with pytest.raises(CSVFormatError, match=r"the label b'(\\xff){20}'… \(100,000 bytes\) is not"):
        load_csv(path)


@pytest.mark.parametrize("content", [b"", b"\n \r\n\t\n", csvrows.BOM + b"\r\n"])
def test_a_file_with_no_rows_is_a_clear_error(tmp_path, content):
    # Today load_csv said "cannot reshape array of size 0 into shape (0,0,3)".
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    gz = tmp_path / "empty.csv.gz"
    gz.write_bytes(gzip.compress(content))
    for p in (path, gz):
        for read in (load_csv, lambda p: load_csv(p, size=2), classes_from_csv):
            with pytest.raises(
                CSVFormatError, match=r"empty\.csv(\.gz)?: no rows: .* Check the path"
            ):
                read(p)
        assert csvrows.count_rows(p) == 0  # a count, not a reader of images


def test_a_file_whose_every_row_is_skipped_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"iris,1,2,x\nrose\n")
    with (
        pytest.warns(BadRowsWarning, match=r"skipped 2 bad row\(s\)"),
        pytest.raises(CSVFormatError, match=r"bad\.csv: no valid rows: every row is bad \(2 skip"),
    ):
        load_csv(path, on_bad_row="skip")


def _damaged_gzip(payload: bytes, damage: str) -> bytes:
    blob = gzip.compress(payload, compresslevel=9)
    if damage == "truncated":
        return blob[: len(blob) * 2 // 3]
    if damage == "no_trailer":
        return blob[:-8]
    if damage == "bad_crc":
        return blob[:-8] + bytes(4) + blob[-4:]
    if damage == "trailing_garbage":
        return blob + b"not gzip at all"
    if damage == "corrupt_data":  # a deflate block type that does not exist
        return blob[:10] + b"\xff" * 64 + blob[74:]
    raise AssertionError(damage)


GZIP_DAMAGE = {
    "truncated": "the gzip file is truncated",
    "no_trailer": "the gzip file is truncated",
    "bad_crc": r"the gzip file is corrupt \(CRC check failed",
    "trailing_garbage": r"the gzip file is corrupt \(Not a gzipped file",
    "corrupt_data": r"the gzip file is corrupt \(Error -3 while decompressing",
}


@pytest.mark.parametrize("damage", sorted(GZIP_DAMAGE))
def test_a_damaged_gzip_file_is_a_format_error_naming_file_and_line(clean, tmp_path, damage):
    # Today: a bare EOFError, BadGzipFile or zlib.error naming no file.
    payload = clean.read_bytes()
    path = tmp_path / "damaged.csv.gz"
    path.write_bytes(_damaged_gzip(payload, damage))
    readers = [
        lambda: load_csv(path, on_bad_row="skip"),  # not a row: never skipped
        lambda: classes_from_csv(path),
        lambda: csvrows.count_rows(path),
        lambda: list(csvrows.iter_lines(path)),
    ]
    for read in readers:
        with pytest.raises(
            CSVFormatError, match=rf"damaged\.csv\.gz, line \d+: {GZIP_DAMAGE[damage]}"
        ):
            read()
    with pytest.raises(CSVFormatError) as info:
        load_csv(path)
    assert info.value.advice == "Re-create the file (gzip the CSV again) or download it again."
    assert info.value.path == str(path)
    if damage in ("truncated", "no_trailer"):  # the line where the data stops; all before are whole
        readable = zlib.decompressobj(wbits=31).decompress(path.read_bytes())
        assert info.value.line == readable.count(b"\n") + 1
    assert 1 <= info.value.line <= payload.count(b"\n") + 1


def test_plain_copy_of_a_damaged_gzip_file_names_it_and_leaves_no_copy(clean, tmp_path):
    from fitlab.data.rowindex import plain_copy

    path = tmp_path / "damaged.csv.gz"
    path.write_bytes(_damaged_gzip(clean.read_bytes(), "truncated"))
    folder = tmp_path / "copies"
    folder.mkdir()
    with pytest.raises(CSVFormatError, match=r"damaged\.csv\.gz, line \d+: the gzip file is trunc"):
        plain_copy(path, folder)
    assert list(folder.iterdir()) == []


def test_width_advice_names_only_what_load_csv_accepts(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_bytes(b"iris,1,2\n")
    with pytest.raises(CSVFormatError, match=r"line 1: 2 values is not size × size × 3") as info:
        load_csv(path)
    assert "size=" in info.value.advice and "on_bad_row='skip'" in info.value.advice


def test_skip_skips_a_first_row_of_no_image_width(clean, tmp_path):
    # Today the first row's width was inferred before any skipping: it always raised.
    path = tmp_path / "bad.csv"
    path.write_bytes(b"iris,1,2\n" + clean.read_bytes())
    with pytest.warns(BadRowsWarning, match=r"line 1: 2 values is not size × size × 3"):
        images, labels = load_csv(path, on_bad_row="skip")
    np.testing.assert_array_equal(images, load_csv(clean)[0])


def test_a_cut_off_single_row_is_reported_as_cut_off(clean, tmp_path):
    path = tmp_path / "cut.csv"
    path.write_bytes(_lines(clean)[0][:-30])  # one row, no line end, fewer values
    with pytest.raises(CSVFormatError, match=r"line 1: the file ends in the middle of this row"):
        load_csv(path)


def test_parse_row_and_classes_from_csv_advise_only_what_they_accept(tmp_path):
    with pytest.raises(CSVFormatError) as info:
        parse_row(b"iris,1,x,3")
    assert info.value.advice == "Fix the row."
    path = tmp_path / "t.csv"
    path.write_bytes(b"iris,1,2,3\n,4,5,6\n\xff,7,8,9\ntulip,1,1,1\n")
    with pytest.raises(CSVFormatError, match=r"line 2: the label \(column 1\) is empty. Fix or"):
        classes_from_csv(path)
    with pytest.warns(BadRowsWarning, match=r"skipped 2 bad row\(s\) .*line 2: .*; line 3: "):
        assert classes_from_csv(path, on_bad_row="skip") == ["iris", "tulip"]


def test_error_keeps_its_advice_through_pickling():
    error = CSVFormatError("a.csv", 3, "bad value", "Fix the row.")
    again = pickle.loads(pickle.dumps(error))
    assert (again.reason, again.advice, str(again)) == (
        "bad value",
        "Fix the row.",
        "a.csv, line 3: bad value. Fix the row.",
    )
