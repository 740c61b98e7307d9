# Ground truth for the manifest reader: the classes Puppet's own
# ClassInformationService finds in each manifest named on stdin (one path a line).
# Prints one JSON object: {path: [class names]} (or {path: null} when Puppet cannot parse it).
require 'puppet'
require 'json'
require 'tmpdir'
require 'puppet/info_service'
Puppet.initialize_settings(['--confdir', Dir.mktmpdir, '--vardir', Dir.mktmpdir])
files = $stdin.read.split("\n")
service = Puppet::InfoService::ClassInformationService.new
result = service.classes_per_environment('production' => files)['production']
out = {}
result.each do |path, info|
  out[path] = info[:error] ? nil : info[:classes].map { |c| c[:name] }
end
puts JSON.generate(out)
