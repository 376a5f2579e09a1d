# A photo taken with the portal's webcam is recorded as such (FaceImage.Source.WEBCAM).
# Depends on 0008: helper H5 adds a 0009 in parallel; the lead rebases this onto it on merge.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('recognition', '0008_reembed_heartbeat'),
    ]

    operations = [
        migrations.AlterField(
            model_name='faceimage',
            name='source',
            field=models.CharField(choices=[('upload', 'Upload'), ('webcam', 'Webcam'), ('check_in', 'Check-in'), ('device', 'Device'), ('demo', 'Demo data')], default='upload', max_length=20),
        ),
    ]
