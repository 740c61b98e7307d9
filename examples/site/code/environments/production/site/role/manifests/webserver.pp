# @summary Example Corp's web server role (no metadata.json: private).
class role::webserver {
  include profile::web
}
