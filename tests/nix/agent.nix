# An operator's agent.nix, adding to what the hive-agent module sets.
{ pkgs, ... }: { environment.systemPackages = [ pkgs.ripgrep ]; }
