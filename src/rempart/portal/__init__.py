"""The professionals' portal: the French pages a pharmacist or a doctor uses in a browser
to log in (password and code, a security key, Pro Santé Connect), look a patient's rights
up, see what their own account did and report what was not them, and keep their keys,
sessions and password. A thin layer over the same domain calls as the API."""
