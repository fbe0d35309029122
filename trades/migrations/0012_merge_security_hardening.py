# Three branches of issue [2/8] each added a trades 0011 (masked account numbers, the reference guard, the signed tenant context).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0011_mask_account_numbers_in_events'),
        ('trades', '0011_refuse_cross_tenant_references'),
        ('trades', '0011_signed_tenant_context'),
    ]

    operations = [
    ]
