"""Forms of the portal's administration pages (/manage/). They only parse and validate input; the
views hand the cleaned values to one service each. Every control has a label."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model, password_validation

from attendance.models import HolidayList, Shift
from portal.models import Department, Employee

WEEKDAYS = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]


class WorkingDaysField(forms.TypedMultipleChoiceField):
    """Working days as seven checkboxes (Monday = 0), stored as a list of weekday numbers."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("choices", WEEKDAYS)
        kwargs.setdefault("coerce", int)
        kwargs.setdefault("label", "Working days")
        super().__init__(**kwargs)

    def prepare_value(self, value):  # type: ignore[no-untyped-def]
        if isinstance(value, str):  # the admin may hand us the JSON text of the model field
            import json

            value = json.loads(value or "[]")
        return [str(day) for day in value or []]


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("format", "%H:%M")
        super().__init__(**kwargs)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("format", "%Y-%m-%d")
        super().__init__(**kwargs)


class PeopleFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search (name, code, login)")
    department = forms.ModelChoiceField(Department.objects.all(), required=False, label="Department",
                                        empty_label="All departments")
    role = forms.ChoiceField(choices=[("", "All roles"), *Employee.Role.choices], required=False, label="Role")
    active = forms.ChoiceField(choices=[("", "Active and inactive"), ("yes", "Active"), ("no", "Inactive")],
                               required=False, label="Status")


class EmployeeForm(forms.Form):
    code = forms.CharField(max_length=40, label="Employee code")
    full_name = forms.CharField(max_length=200, label="Full name")
    department = forms.ModelChoiceField(Department.objects.all(), required=False, label="Department",
                                        empty_label="No department")
    role = forms.ChoiceField(choices=Employee.Role.choices, initial=Employee.Role.EMPLOYEE, label="Role")
    is_active = forms.BooleanField(required=False, initial=True, label="Active")
    consent = forms.BooleanField(required=False, label="Consented to biometric processing",
                                 help_text="Required before a photo is enrolled.")
    username = forms.CharField(max_length=150, required=False, label="Login name",
                               help_text="Optional: lets the person sign in to see their own records.")
    password = forms.CharField(required=False, label="Password", widget=forms.PasswordInput(render_value=False),
                               help_text="With a login name: the password it signs in with.")
    photo = forms.ImageField(required=False, label="Photo", help_text="One face, sharp, frontal.")

    def __init__(self, *args, employee: Employee | None = None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.employee = employee
        super().__init__(*args, **kwargs)
        if employee is not None and employee.user is not None:
            self.fields["username"].disabled = True
            self.fields["username"].help_text = "The login of this person."
            self.fields["password"].help_text = "Leave empty to keep the password."

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].strip()
        others = Employee.objects.filter(code=code)
        if self.employee is not None:
            others = others.exclude(pk=self.employee.pk)
        if others.exists():
            raise forms.ValidationError("An employee with this code exists.")
        return code

    def clean_username(self) -> str:
        username = (self.cleaned_data.get("username") or "").strip()
        if username and (self.employee is None or self.employee.user is None) \
                and get_user_model().objects.filter(username=username).exists():
            raise forms.ValidationError("This login name is taken.")
        return username

    def clean(self) -> dict:
        data = super().clean()
        if (data.get("password") and not data.get("username") and "username" not in self.errors
                and (self.employee is None or self.employee.user is None)):
            self.add_error("username", "A password needs a login name.")
        if data.get("password"):
            # The site's password rules (settings.AUTH_PASSWORD_VALIDATORS), as on every other password form.
            user = get_user_model()(username=data.get("username") or "")
            if self.employee is not None and self.employee.user is not None:
                user = self.employee.user
            try:
                password_validation.validate_password(data["password"], user)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        if data.get("photo") and not data.get("consent"):
            self.add_error("consent", "A photo is enrolled only with the person's consent.")
        return data


class PhotoForm(forms.Form):
    photo = forms.ImageField(label="Photo", help_text="One face, sharp, frontal.")


class DepartmentForm(forms.Form):
    name = forms.CharField(max_length=120, label="Department name")

    def __init__(self, *args, department: Department | None = None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.department = department
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        others = Department.objects.filter(name__iexact=name)
        if self.department is not None:
            others = others.exclude(pk=self.department.pk)
        if others.exists():
            raise forms.ValidationError("A department with this name exists.")
        return name


class ShiftForm(forms.ModelForm):
    working_days = WorkingDaysField(initial=[0, 1, 2, 3, 4])

    class Meta:
        model = Shift
        fields = ["name", "start", "end", "working_days", "late_grace_minutes", "early_exit_grace_minutes",
                  "half_day_below_hours", "absent_below_hours", "holiday_list", "checkout_after_end_minutes"]
        widgets = {"start": TimeInput(), "end": TimeInput()}
        labels = {"name": "Shift name", "start": "Starts at", "end": "Ends at",
                  "late_grace_minutes": "Late after (minutes past the start)",
                  "early_exit_grace_minutes": "Early exit before (minutes before the end)",
                  "half_day_below_hours": "Half day below (hours worked)",
                  "absent_below_hours": "Absent below (hours worked)", "holiday_list": "Holiday list",
                  "checkout_after_end_minutes": "Overnight shifts: check-outs count up to (minutes after the end)"}


class ShiftAssignmentForm(forms.Form):
    shift = forms.ModelChoiceField(Shift.objects.all(), label="Shift")
    department = forms.ModelChoiceField(Department.objects.all(), required=False, label="Department",
                                        empty_label="(an employee instead)")
    employee = forms.ModelChoiceField(Employee.objects.filter(is_active=True), required=False, label="Employee",
                                      empty_label="(a department instead)")
    valid_from = forms.DateField(label="Valid from", widget=DateInput())
    valid_to = forms.DateField(required=False, label="Valid to (empty: open-ended)", widget=DateInput())

    def clean(self) -> dict:
        data = super().clean()
        if bool(data.get("department")) == bool(data.get("employee")):
            raise forms.ValidationError("Choose a department or an employee (one of them).")
        if data.get("valid_to") and data.get("valid_from") and data["valid_to"] < data["valid_from"]:
            self.add_error("valid_to", "The assignment ends before it starts.")
        return data


class HolidayListForm(forms.Form):
    name = forms.CharField(max_length=120, label="Holiday list name")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if HolidayList.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError("A holiday list with this name exists.")
        return name


class HolidayForm(forms.Form):
    date = forms.DateField(label="Date", widget=DateInput())
    name = forms.CharField(max_length=120, label="Holiday name")


class DeviceForm(forms.Form):
    name = forms.CharField(max_length=120, label="Device name")
    location = forms.CharField(max_length=200, required=False, label="Location")

    def clean_name(self) -> str:
        from portal.models import Device

        name = self.cleaned_data["name"].strip()
        if Device.objects.filter(name=name).exists():
            raise forms.ValidationError("A device with this name exists.")
        return name
