"""The nightly job that closes yesterday's attendance, in django-celery-beat's database scheduler
(admins see and change it under Periodic tasks)."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    schedule, _ = CrontabSchedule.objects.get_or_create(minute="15", hour="0", day_of_week="*", day_of_month="*",
                                                        month_of_year="*")
    PeriodicTask.objects.get_or_create(
        name="Close yesterday's attendance", defaults={"task": "attendance.close_yesterday", "crontab": schedule}
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name="Close yesterday's attendance").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("attendance", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
