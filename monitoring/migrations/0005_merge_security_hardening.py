# Two branches of issue [2/8] each added a migration here (the reference guard, the signed tenant context).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('monitoring', '0004_refuse_cross_tenant_references'),
        ('monitoring', '0004_signed_tenant_context'),
    ]

    operations = [
    ]
