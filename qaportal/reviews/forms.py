"""Forms of the blind review, committee scoring and reader feedback."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from qaportal.forms_choices import choices
from qaportal.models.review import (
    CATEGORIES,
    CATEGORY_LABELS,
    RADPEER_SCORES,
    REVIEW_SCORES,
    SCORE_LABELS,
)
from qaportal.reviews.service import score_problems


class ImpressionForm(FlaskForm):
    """Step 1: the reviewer's own impression, before the original report is shown."""

    impression = TextAreaField(
        "Your impression", validators=[Optional(), Length(max=20000)],
        description="What you see in the images, before reading the original report. "
                    "It is kept with your review.")
    submit = SubmitField("Save impression and reveal the original report")


class ScoreForm(FlaskForm):
    """Step 2: the RADPEER score, category, comment and learning flag."""

    score = RadioField("RADPEER score",
                       choices=choices((s, SCORE_LABELS[s]) for s in REVIEW_SCORES),
                       validators=[Optional()])
    category = SelectField("Discrepancy category",
                           choices=choices([("", "—")]
                                           + [(c, CATEGORY_LABELS[c]) for c in CATEGORIES]),
                           validators=[Optional()],
                           description="Required for scores 2 and 3.")
    comment = TextAreaField("Comment", validators=[Optional(), Length(max=20000)],
                            description="Required for scores 2 and 3.")
    unable_reason = TextAreaField("Why the case cannot be assessed",
                                  validators=[Optional(), Length(max=5000)])
    learning_case = BooleanField("Good learning case")
    submit = SubmitField("Submit review")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        problems = score_problems(self.score.data, self.category.data or None,
                                  self.comment.data, self.unable_reason.data)
        for name, message in problems.items():
            getattr(self, name).errors = [*getattr(self, name).errors, message]
        return ok and not problems


class VoteForm(FlaskForm):
    """A committee member's independent score."""

    score = RadioField("Your score",
                       choices=choices((s, SCORE_LABELS[s]) for s in RADPEER_SCORES),
                       validators=[DataRequired(message="Choose a score.")])
    comment = TextAreaField("Comment", validators=[Optional(), Length(max=20000)],
                            description="Required unless you score 1.")
    submit = SubmitField("Submit my score")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if self.score.data and self.score.data != "1" and not (self.comment.data or "").strip():
            self.comment.errors = [*self.comment.errors,
                                   "Explain a discrepancy score in a comment."]
            return False
        return ok


class FeedbackForm(FlaskForm):
    """The reader's acknowledgement, response or dispute."""

    response = TextAreaField("Your response", validators=[Optional(), Length(max=20000)],
                             description="Optional when you acknowledge; required to dispute.")
    acknowledge = SubmitField("Acknowledge")
    dispute = SubmitField("Dispute the decision")
