# @summary Example Corp's web server profile.
class profile::web {
  include profile::base
  include apache, 'apache::mod::ssl'
  apache::vhost { 'intranet.examplecorp.invalid': docroot => '/srv/intranet' }
}
