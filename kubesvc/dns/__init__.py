"""kubesvc.dns"""
