"""Every GET URL of the app, filled from a table of values: the walks of the blinding and
sentinel tests request each one as each user."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from flask import url_for


def get_urls(app, values: dict[str, list]) -> Iterator[tuple[str, str]]:
    """Yield (endpoint, url) for every GET rule, once per combination of its values."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        args = sorted(rule.arguments)
        missing = [a for a in args if a not in values]
        assert not missing, f"{rule.endpoint}: teach this test to fill {missing}"
        for combo in itertools.product(*(values[a] for a in args)):
            with app.test_request_context():
                yield rule.endpoint, url_for(rule.endpoint, **dict(zip(args, combo, strict=True)))


def dicomweb_values(study) -> dict[str, list]:
    """URL values of the DICOMweb routes for a study's first instance: each UID both as
    stored and remapped (a de-identified caller reaches only the second, others the first)."""
    from qaportal.dicomweb.access import deid_context

    ctx = deid_context(study)
    series = study.series[0]
    inst = series.instances[0]
    uids = {"study_uid": study.study_uid, "series_uid": series.series_uid,
            "instance_uid": inst.sop_uid}
    values: dict[str, list] = {k: [v, ctx.new_uid_for(v)] for k, v in uids.items()}
    values["frame_list"] = ["1"]
    values["tag_path"] = ["7FE00010"]
    return values
