# Installed by the dropsonde package in place of the Ruby gem's executable that
# Puppet Server's analytics service runs every dropsonde.interval
# (/opt/puppetlabs/puppet/bin/ruby <server-var-dir>/dropsonde/bin/dropsonde submit).
# It runs dropsonde's scheduled submission instead: one program, which sends at
# most one report per interval (shared with the dropsonde timer), and only when
# dropsonde.enabled is true in Puppet Server's conf.d (absent means not enabled).
exec("@SHIM@", "submit", "--scheduled")
