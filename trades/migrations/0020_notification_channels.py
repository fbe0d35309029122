"""Notification channels (issue 21): a trader's Apprise URLs, encrypted, and their outbox.

Row-level security as written today, frozen here (copied, not imported: a migration imports no
live code): ENABLE + FORCE, the signed tenant policy (`app_user_id()`, tradeoptions 0001) and the
system context for tradeoptions_system only. A message points only at its owner's channel (the
reference guard of brokers 0008), and a channel's owner cannot change under its messages.
"""

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0019_validate_exit_policy_checks'),
        ('brokers', '0008_refuse_cross_tenant_references'),
        ('tradeoptions', '0001_signed_tenant_context'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='NotificationChannel',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=60)),
                ('url_encrypted', models.TextField(editable=False)),
                ('url_hint', models.CharField(editable=False, max_length=40)),
                ('enabled', models.BooleanField(default=True)),
                ('events', models.JSONField(default=list)),
                ('quiet_start', models.TimeField(blank=True, null=True)),
                ('quiet_end', models.TimeField(blank=True, null=True)),
                ('quiet_mode', models.CharField(choices=[('HOLD', 'Hold until quiet hours end'), ('DROP', 'Drop')], default='HOLD', max_length=4)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['name', 'pk'],
            },
        ),
        migrations.CreateModel(
            name='ChannelMessage',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('kind', models.CharField(choices=[('trade.opened', 'Entry filled'), ('trade.tp_hit', 'Take-profit hit'), ('trade.sl_hit', 'Stop-loss hit'), ('trade.manual_close', 'Manual close filled'), ('trade.policy_exit', 'Closed by its exit policy'), ('trade.expired', 'Expired'), ('trade.rejected', 'Rejected by the broker'), ('position.unprotected', 'Position unprotected'), ('trade.oversold', 'Over-sold at the broker'), ('broker.auth_failed', 'Broker refused the token'), ('channel.test', 'Test message')], max_length=32)),
                ('title', models.CharField(max_length=120)),
                ('body', models.TextField()),
                ('critical', models.BooleanField(default=False)),
                ('status', models.CharField(choices=[('PENDING', 'Pending (being delivered)'), ('HELD', 'Held for the end of quiet hours'), ('DELIVERED', 'Delivered'), ('FAILED', 'Given up'), ('DROPPED', 'Dropped (quiet hours)')], default='PENDING', max_length=10)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('error', models.CharField(blank=True, max_length=255)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('channel', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='trades.notificationchannel')),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.AddConstraint(
            model_name='notificationchannel',
            constraint=models.CheckConstraint(condition=models.Q(('quiet_mode__in', ['HOLD', 'DROP'])), name='notification_channel_quiet_mode_known'),
        ),
        migrations.AddConstraint(
            model_name='notificationchannel',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('quiet_end__isnull', True), ('quiet_start__isnull', True)), models.Q(('quiet_end__isnull', False), ('quiet_start__isnull', False)), _connector='OR'), name='notification_channel_quiet_hours_both_or_neither'),
        ),
        migrations.AddIndex(
            model_name='channelmessage',
            index=models.Index(fields=['channel', '-created_at'], name='channel_message_log_idx'),
        ),
        migrations.AddIndex(
            model_name='channelmessage',
            index=models.Index(condition=models.Q(('status__in', ['PENDING', 'HELD'])), fields=['next_attempt_at'], name='channel_message_due_idx'),
        ),
        migrations.AddConstraint(
            model_name='channelmessage',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['PENDING', 'HELD', 'DELIVERED', 'FAILED', 'DROPPED'])), name='channel_message_status_known'),
        ),
        migrations.RunSQL(
            sql="""
                ALTER TABLE trades_notificationchannel ENABLE ROW LEVEL SECURITY;
                ALTER TABLE trades_notificationchannel FORCE ROW LEVEL SECURITY;
                CREATE POLICY tenant_owner ON trades_notificationchannel
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                CREATE POLICY system_context ON trades_notificationchannel TO tradeoptions_system
                    USING (current_setting('app.system', true) = 'on')
                    WITH CHECK (current_setting('app.system', true) = 'on');
            """,
            reverse_sql="""
                DROP POLICY IF EXISTS system_context ON trades_notificationchannel;
                DROP POLICY IF EXISTS tenant_owner ON trades_notificationchannel;
                ALTER TABLE trades_notificationchannel NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE trades_notificationchannel DISABLE ROW LEVEL SECURITY;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER TABLE trades_channelmessage ENABLE ROW LEVEL SECURITY;
                ALTER TABLE trades_channelmessage FORCE ROW LEVEL SECURITY;
                CREATE POLICY tenant_owner ON trades_channelmessage
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                CREATE POLICY system_context ON trades_channelmessage TO tradeoptions_system
                    USING (current_setting('app.system', true) = 'on')
                    WITH CHECK (current_setting('app.system', true) = 'on');
            """,
            reverse_sql="""
                DROP POLICY IF EXISTS system_context ON trades_channelmessage;
                DROP POLICY IF EXISTS tenant_owner ON trades_channelmessage;
                ALTER TABLE trades_channelmessage NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE trades_channelmessage DISABLE ROW LEVEL SECURITY;
            """,
        ),
        migrations.RunSQL(
            sql="""
                CREATE TRIGGER tenant_reference_channel_id BEFORE INSERT OR UPDATE OF channel_id, owner_id
                    ON trades_channelmessage
                    FOR EACH ROW EXECUTE FUNCTION refuse_cross_tenant_reference('channel_id', 'trades_notificationchannel');
                CREATE TRIGGER tenant_referenced_owner BEFORE UPDATE OF owner_id ON trades_notificationchannel
                    FOR EACH ROW EXECUTE FUNCTION refuse_owner_change_while_referenced();
            """,
            reverse_sql="""
                DROP TRIGGER IF EXISTS tenant_referenced_owner ON trades_notificationchannel;
                DROP TRIGGER IF EXISTS tenant_reference_channel_id ON trades_channelmessage;
            """,
        ),
    ]
