"""Every form of the app gives WTForms its choices as SelectChoice objects, not (value, label)
tuples: WTForms 3.3 deprecates the tuples and 3.4 drops them.

The forms are built here with WTForms' DeprecationWarnings as errors; the choices that
routes set at run time are checked in their pages' tests (tests/choices_strict.py).
"""

import importlib
import pkgutil
import warnings

from flask_wtf import FlaskForm
from wtforms import SelectChoice
from wtforms.fields.choices import SelectFieldBase

import qaportal
from qaportal.forms_choices import choices


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _form_classes() -> list[type[FlaskForm]]:
    """Every FlaskForm subclass defined in qaportal (every module imported first)."""
    for info in pkgutil.walk_packages(qaportal.__path__, "qaportal."):
        importlib.import_module(info.name)
    found = {c for c in _subclasses(FlaskForm) if c.__module__.startswith("qaportal.")}
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))


def test_every_form_builds_without_the_tuple_choices_deprecation(app):
    classes = _form_classes()
    assert len(classes) > 40  # the walk found the forms (53 when written)
    problems = []
    with app.test_request_context():
        for cls in classes:
            name = f"{cls.__module__}.{cls.__qualname__}"
            with warnings.catch_warnings():
                warnings.filterwarnings("error", "Passing SelectField choices",
                                        DeprecationWarning)
                try:
                    form = cls(formdata=None)
                except DeprecationWarning as exc:
                    problems.append(f"{name}: {exc}")
                    continue
            for field in form:
                if isinstance(field, SelectFieldBase):
                    wrong = [c for c in field.choices or () if not isinstance(c, SelectChoice)]
                    if wrong:
                        problems.append(f"{name}.{field.name}: {wrong[:2]}")
    assert problems == []


def test_choices_keep_values_labels_and_order():
    built = choices([(0, "Any reader"), (7, "Dr A"), ("", "—"), (None, "—")])
    assert [(c.value, c.label) for c in built] == [(0, "Any reader"), (7, "Dr A"), ("", "—"),
                                                   (None, "—")]
    assert all(isinstance(c, SelectChoice) and c.optgroup is None and c.render_kw == {}
               for c in built)
    assert choices(x for x in [("a", "A")]) == [SelectChoice("a", "A")]


def test_an_int_choice_validates_and_renders_as_before(app):
    from wtforms import SelectField

    class _Form(FlaskForm):
        class Meta:
            csrf = False

        reader_id = SelectField("Reader", coerce=int)

    with app.test_request_context(method="POST", data={"reader_id": "7"}):
        form = _Form()
        form.reader_id.choices = choices([(0, "Any reader"), (7, "Dr A")])
        assert form.validate() and form.reader_id.data == 7
        html = form.reader_id()
        assert '<option value="0">Any reader</option>' in html
        assert '<option selected value="7">Dr A</option>' in html
    with app.test_request_context(method="POST", data={"reader_id": "8"}):
        form = _Form()
        form.reader_id.choices = choices([(0, "Any reader"), (7, "Dr A")])
        assert not form.validate()
