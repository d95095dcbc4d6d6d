"""The deploy engine, which knows no Slack: the service (every action and its rules), the execution
of one deploy, the script runner, progress markers, git, the secret filter, the event bus and the
periodic jobs. It imports only storage, bot.config, bot.errors and bot.i18n."""
