"""Web Push (issue 21): a channel's kind, and one browser's push subscription per WEB_PUSH channel.

Row-level security as the channels' (trades 0020), frozen here: ENABLE + FORCE, the signed tenant
policy and the system context for tradeoptions_system only. A subscription points only at its
owner's channel (the reference guard of brokers 0008).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0024_merge_20261205_1650'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='PushSubscription',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('subscription_encrypted', models.TextField(editable=False)),
                ('endpoint_sha256', models.CharField(editable=False, max_length=64)),
                ('endpoint_host', models.CharField(editable=False, max_length=255)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.AddField(
            model_name='notificationchannel',
            name='kind',
            field=models.CharField(choices=[('APPRISE', 'Apprise URL'), ('WEB_PUSH', 'Push to a device')], default='APPRISE', max_length=8),
        ),
        migrations.AddConstraint(
            model_name='notificationchannel',
            constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['APPRISE', 'WEB_PUSH'])), name='notification_channel_kind_known'),
        ),
        migrations.AddField(
            model_name='pushsubscription',
            name='channel',
            field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='push_subscription', to='trades.notificationchannel'),
        ),
        migrations.AddField(
            model_name='pushsubscription',
            name='owner',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddConstraint(
            model_name='pushsubscription',
            constraint=models.UniqueConstraint(fields=('owner', 'endpoint_sha256'), name='push_subscription_endpoint_unique'),
        ),
        migrations.RunSQL(
            sql="""
                ALTER TABLE trades_pushsubscription ENABLE ROW LEVEL SECURITY;
                ALTER TABLE trades_pushsubscription FORCE ROW LEVEL SECURITY;
                CREATE POLICY tenant_owner ON trades_pushsubscription
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                CREATE POLICY system_context ON trades_pushsubscription TO tradeoptions_system
                    USING (current_setting('app.system', true) = 'on')
                    WITH CHECK (current_setting('app.system', true) = 'on');
                CREATE TRIGGER tenant_reference_channel_id BEFORE INSERT OR UPDATE OF channel_id, owner_id
                    ON trades_pushsubscription
                    FOR EACH ROW EXECUTE FUNCTION refuse_cross_tenant_reference('channel_id', 'trades_notificationchannel');
            """,
            reverse_sql="""
                DROP TRIGGER IF EXISTS tenant_reference_channel_id ON trades_pushsubscription;
                DROP POLICY IF EXISTS system_context ON trades_pushsubscription;
                DROP POLICY IF EXISTS tenant_owner ON trades_pushsubscription;
                ALTER TABLE trades_pushsubscription NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE trades_pushsubscription DISABLE ROW LEVEL SECURITY;
            """,
        ),
    ]
