"""MQTT 3.1, 3.1.1 and 5.0, as RabbitMQ's MQTT plugin speaks it: sans-IO, over the broker model.

codec.py turns bytes into packets (packets.py) and back; topics.py maps MQTT topics onto AMQP
routing keys; convert.py turns a PUBLISH into an AMQP message and a delivery back into a PUBLISH;
connection.py is one client's connection and session; node.py holds what the connections share
(client ids, retained messages, settings).
"""
