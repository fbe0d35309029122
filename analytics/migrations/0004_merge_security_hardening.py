# Two branches of issue [2/8] each added a migration here (the reference guard, the signed tenant context).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0003_refuse_cross_tenant_references'),
        ('analytics', '0003_signed_tenant_context'),
    ]

    operations = [
    ]
