"""Forms of the pages (Flask-WTF: every form that changes something carries a
CSRF token)."""

from __future__ import annotations

from datetime import date
from datetime import timedelta

from flask_wtf.file import MultipleFileField
from wtforms import DateField
from wtforms import HiddenField
from wtforms import IntegerField
from wtforms import SearchField
from wtforms import SelectChoice
from wtforms import SelectField
from wtforms import SubmitField
from wtforms.validators import DataRequired
from wtforms.validators import InputRequired
from wtforms.validators import Length
from wtforms.validators import NumberRange
from wtforms.validators import Optional
from wtforms.validators import ValidationError

from app.auth.forms import SecretField
from app.auth.forms import TextField
from app.http.json_bodies import JsonObjectForm
from app.http.params import MAX_ID
from app.http.params import is_ascii_integer
from app.services.history import DEFAULT_SORT
from app.services.history import RETENTION_CHOICES
from app.services.history import REVIEWS
from app.services.history import SORTS
from app.services.history import retention_label


class WholeNumberField(IntegerField):
    """An IntegerField that takes ASCII digits only (see app/http/params.py):
    WTForms' int() also takes "１２", " 7 " and "1_0"."""

    def process_formdata(self, valuelist: list) -> None:
        if not valuelist or valuelist[0] == "":
            return
        if not is_ascii_integer(valuelist[0]):
            self.data = None
            raise ValueError(self.gettext("Not a valid integer value."))
        self.data = int(valuelist[0])


def whole_number(value: object) -> int:
    """A SelectField ``coerce`` that takes ASCII digits only."""
    if isinstance(value, int):
        return value
    if not is_ascii_integer(value):
        raise ValueError("Not a whole number.")
    return int(value)


class UploadForm(JsonObjectForm):
    image = MultipleFileField("Images")
    submit = SubmitField("Classify")


class TokenForm(JsonObjectForm):
    name = TextField(
        "Token name",
        validators=[DataRequired(), Length(max=64)],
        description="What the token is for, e.g. 'nightly import script'.",
    )
    submit = SubmitField("Create token")


class ConfirmForm(JsonObjectForm):
    """An empty form for POST buttons (delete, revoke, sign out): CSRF only."""

    submit = SubmitField("Confirm")


class HistoryFilterForm(JsonObjectForm):
    """History search, date range and sort, read from the query string."""

    class Meta:
        csrf = False  # a GET form that changes nothing

    q = SearchField("Label contains", validators=[Optional(), Length(max=128)])
    start = DateField("From (UTC)", validators=[Optional()])
    end = DateField("To (UTC)", validators=[Optional()])
    sort = SelectField(
        "Sort by",
        choices=[SelectChoice(key, label) for key, (label, _) in SORTS.items()],
        default=DEFAULT_SORT,
    )
    # Set by the links of a batch's page (no field is shown for it).
    batch = WholeNumberField("Batch", validators=[Optional(), NumberRange(1, MAX_ID)])
    review = SelectField(
        "Review",
        choices=[SelectChoice(key, label) for key, (label, _) in REVIEWS.items()],
        default="",
    )

    def validate_start(self, field: DateField) -> None:
        check_filter_date(field.data)

    def validate_end(self, field: DateField) -> None:
        check_filter_date(field.data)
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError("The end date is before the start date.")


# The end date is inclusive (up to the next midnight), and the next midnight
# after the last representable day cannot be computed.
LAST_FILTER_DAY = date.max - timedelta(days=1)


def check_filter_date(day: date | None) -> None:
    if day is not None and day > LAST_FILTER_DAY:
        raise ValidationError(f"Choose a date up to {LAST_FILTER_DAY.isoformat()}.")


class RetentionForm(JsonObjectForm):
    days = SelectField(
        "Keep my history for",
        coerce=whole_number,
        choices=[
            SelectChoice(str(days), retention_label(days)) for days in RETENTION_CHOICES
        ],
        description="Older predictions are deleted for good.",
    )
    submit = SubmitField("Save")


class DeleteAccountForm(JsonObjectForm):
    password = SecretField(
        "Your password",
        validators=[DataRequired()],
        description="Deletes your account, history, shared links and API tokens.",
    )
    submit = SubmitField("Delete my account")


class ConfidenceForm(JsonObjectForm):
    percent = WholeNumberField(
        "Not sure below (%)",
        validators=[InputRequired(), NumberRange(0, 100)],
        description="Results whose best score is lower are marked 'not sure'.",
    )
    next = HiddenField()
    submit = SubmitField("Apply")


__all__ = [
    "ConfidenceForm",
    "ConfirmForm",
    "DeleteAccountForm",
    "HistoryFilterForm",
    "RetentionForm",
    "TokenForm",
    "UploadForm",
]
