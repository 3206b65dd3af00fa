"""DIMSE networking (PS3.7, PS3.8): radai's SCP (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET) and SCU."""
