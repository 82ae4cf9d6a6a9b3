from taphouse.client.errors import QueryError, render_caret


def test_caret_points_at_line_and_column():
    query = "SELECT ra,\n       nonsense\nFROM gaia.dr3_bright"
    text = render_caret(query, 2, 8)
    lines = text.splitlines()
    assert lines[1] == "2 |        nonsense"
    assert lines[2] == "  |        ^"
    assert lines[2].index("^") == lines[1].index("nonsense")


def test_query_error_str_shows_message_job_and_caret():
    err = QueryError("unknown column 'foo'", query="SELECT foo FROM t", line=1, column=8,
                     job_id="j1")
    text = str(err)
    assert text.startswith("unknown column 'foo' [job j1]")
    assert text.splitlines()[-1].index("^") == text.splitlines()[-2].index("foo")


def test_caret_clamps_positions_outside_the_text():
    text = render_caret("SELECT 1", 5, 99)
    assert text.splitlines()[-1].endswith(" " * 8 + "^")
